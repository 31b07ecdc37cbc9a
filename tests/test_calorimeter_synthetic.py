"""Synthetic showers: seeded reproducibility, physical sanity, particle differences, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ffjord_kit.calorimeter.observables import shower_observables
from ffjord_kit.calorimeter.showers import read_calogan
from ffjord_kit.calorimeter.synthetic import (
    READOUT_THRESHOLD_GEV,
    cell_fractions,
    expected_deposit_fraction,
    generate_showers,
)
from ffjord_kit.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def samples():
    return {p: generate_showers(p, 3000, seed=11) for p in ("gamma", "eplus", "piplus")}


def test_reproducible_with_seed():
    a, b = generate_showers("eplus", 300, seed=5), generate_showers("eplus", 300, seed=5)
    c = generate_showers("eplus", 300, seed=6)
    np.testing.assert_array_equal(a.voxels(), b.voxels())
    np.testing.assert_array_equal(a.energy, b.energy)
    assert not np.array_equal(a.voxels(), c.voxels())


def test_physical_sanity(samples):
    for particle, s in samples.items():
        e = s.energy[:, 0]
        assert e.min() >= 1.0 and e.max() <= 100.0
        v = s.voxels()
        assert (v >= 0).all() and np.isfinite(v).all()
        assert ((v == 0) | (v >= READOUT_THRESHOLD_GEV)).all()  # readout threshold
        deposited = v.sum(axis=1)
        assert (deposited < e).all(), particle  # energy conservation, shower by shower


@pytest.mark.parametrize("particle", ["gamma", "piplus"])
def test_mean_deposit_matches_sampling_model(particle):
    """At fixed E the mean deposited fraction is the model's containment x response; the
    spread is the sampling + shape fluctuations (checked against 5 standard errors)."""
    s = generate_showers(particle, 1000, seed=2, energy_range_gev=(50.0, 50.0))
    ratio = s.layer_energies().sum(axis=1) / 50.0
    expected = expected_deposit_fraction(particle, 50.0, n=4000, seed=9)
    # The readout threshold removes a little energy; allow it on the low side only.
    assert expected - 5 * ratio.std() / np.sqrt(len(ratio)) - 0.01 < ratio.mean()
    assert ratio.mean() < expected + 5 * ratio.std() / np.sqrt(len(ratio))


def test_particles_have_different_shapes(samples):
    obs = {p: shower_observables(s) for p, s in samples.items()}
    # photons convert later than positrons start: less energy in the first layer
    assert np.mean(obs["gamma"]["frac_layer_0"]) < 0.5 * np.mean(obs["eplus"]["frac_layer_0"])
    # pions: low visible fraction, deep and wide showers
    assert np.mean(obs["piplus"]["deposit_ratio"]) < 0.5 * np.mean(obs["gamma"]["deposit_ratio"])
    assert np.mean(obs["piplus"]["frac_layer_2"]) > 2 * np.mean(obs["gamma"]["frac_layer_2"])
    assert np.nanmean(obs["piplus"]["width_x_layer_1"]) > np.nanmean(
        obs["gamma"]["width_x_layer_1"])


def test_depth_grows_with_energy(samples):
    s = samples["gamma"]
    depth = shower_observables(s)["shower_depth"]
    e = s.energy[:, 0]
    assert depth[e > 50].mean() > depth[e < 10].mean()


def test_width_scale_widens(samples):
    wide = generate_showers("gamma", 3000, seed=11, width_scale=1.2)
    w_ref = shower_observables(samples["gamma"])["width_x_layer_1"]
    w_wide = shower_observables(wide)["width_x_layer_1"]
    assert np.nanmedian(w_wide) > 1.05 * np.nanmedian(w_ref)


def test_cell_fractions_integrate_the_density():
    """Cells tile the face: their sum equals the closed-form containment of a 480 mm square;
    a tiny radius puts everything into the cell under the impact point."""
    r = np.array([30.0])
    total = cell_fractions(1, np.zeros(1), np.zeros(1), r).sum()
    half = 240.0
    square = 4 * np.arctan(half * half / (r[0] * np.sqrt(r[0] ** 2 + 2 * half**2))) / (2 * np.pi)
    assert total == pytest.approx(square, rel=1e-12)
    point = cell_fractions(1, np.array([50.0]), np.array([-10.0]), np.array([1e-3]))[0]
    assert point[5, 7] == pytest.approx(1.0, abs=1e-4)  # row 5 spans [-40, 0], col 7 [40, 80]


def test_bad_arguments():
    with pytest.raises(UserError, match="unknown particle 'muon'"):
        generate_showers("muon", 10)
    with pytest.raises(UserError, match="width_scale"):
        generate_showers("gamma", 10, width_scale=0.0)


def test_cli_writes_calogan_layout(tmp_path):
    out = tmp_path / "gamma.h5"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "make_calorimeter_data.py"),
                          "--particle", "gamma", "--n", "50", "--seed", "4", "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["n"] == 50
    s = read_calogan(out)
    np.testing.assert_allclose(s.voxels(), generate_showers("gamma", 50, seed=4).voxels(),
                               rtol=1e-6)
