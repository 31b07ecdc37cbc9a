"""CaloGAN HDF5 reader and writer: real layout, malformed files, NaN policies, rank sharding."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ffjord_kit.calorimeter import showers as calo
from ffjord_kit.calorimeter.showers import (
    LAYER_KEYS,
    LAYER_SHAPES,
    ShowerSet,
    read_calogan,
    write_calogan,
)
from ffjord_kit.errors import DataError, UserError

REPO = Path(__file__).resolve().parents[1]


def _raw_file(path: Path, n: int = 10, seed: int = 0, with_overflow: bool = True,
              **override) -> Path:
    """A file in the CaloGAN layout: energy (N, 1) GeV, voxels in MeV (deposit < incident)."""
    rng = np.random.default_rng(seed)
    data = {"energy": rng.uniform(1, 100, (n, 1)).astype(np.float32)}
    for key, shape in zip(LAYER_KEYS, LAYER_SHAPES, strict=True):
        data[key] = (rng.exponential(1.0, (n, *shape)) * (rng.random((n, *shape)) < 0.3)
                     ).astype(np.float32)
    if with_overflow:
        data["overflow"] = rng.exponential(1.0, (n, 3)).astype(np.float32)
    data.update(override)
    with h5py.File(path, "w") as fh:
        for key, value in data.items():
            if value is not None:
                fh.create_dataset(key, data=value)
    return path


def test_read_real_layout_units_and_overflow(tmp_path):
    path = _raw_file(tmp_path / "a.h5", n=7)
    with h5py.File(path) as fh:
        raw = {k: fh[k][:] for k in fh}
    s = read_calogan(path)  # MeV voxels -> GeV
    assert len(s) == 7 and s.energy.shape == (7, 1)
    np.testing.assert_allclose(s.energy, raw["energy"])
    for key, layer in zip(LAYER_KEYS, s.layers, strict=True):
        np.testing.assert_allclose(layer, raw[key] * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(s.overflow, raw["overflow"] * 1e-3, rtol=1e-6)
    g = read_calogan(path, unit_scale=1.0)
    np.testing.assert_allclose(g.layers[1], raw["layer_1"])
    assert s.info["n_events_file"] == 7 and s.info["n_nan_events"] == 0


def test_write_read_round_trip_and_refuses_input(tmp_path):
    src = read_calogan(_raw_file(tmp_path / "a.h5", n=12))
    out = tmp_path / "b.h5"
    write_calogan(out, src)
    back = read_calogan(out)
    np.testing.assert_array_equal(back.energy, src.energy)
    for a, b in zip(src.layers, back.layers, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    with h5py.File(out) as fh:  # on disk in the CaloGAN units and dtype
        assert fh["layer_2"].dtype == np.float32 and fh["layer_2"].shape == (12, 12, 6)
    before = hashlib.sha256((tmp_path / "a.h5").read_bytes()).hexdigest()
    with pytest.raises(UserError, match="refusing to write over the input"):
        write_calogan(tmp_path / "a.h5", src)
    assert hashlib.sha256((tmp_path / "a.h5").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]  # no temp left


@pytest.mark.parametrize("size", [1, 3, 4])
def test_rank_shards_partition_the_file(tmp_path, size):
    path = _raw_file(tmp_path / "a.h5", n=11)
    full = read_calogan(path)
    shards = [read_calogan(path, rank=r, size=size, chunk_events=2) for r in range(size)]
    assert sum(len(s) for s in shards) == len(full)
    for r, s in enumerate(shards):
        np.testing.assert_array_equal(s.energy, full.energy[r::size])
        np.testing.assert_array_equal(s.layers[0], full.layers[0][r::size])
    capped = read_calogan(path, rank=1, size=2, max_events=6)
    np.testing.assert_array_equal(capped.energy, full.energy[1:6:2])


def test_rank_reads_only_its_own_events(tmp_path, monkeypatch):
    """Every HDF5 read of rank 1 of 3 is a strided selection of that rank's rows only."""
    path = _raw_file(tmp_path / "a.h5", n=20)
    selections = []
    original = h5py.Dataset.__getitem__

    def recording(self, args, *rest, **kw):
        selections.append(args)
        return original(self, args, *rest, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    read_calogan(path, rank=1, size=3, chunk_events=6)
    assert selections, "reader did not read through h5py datasets"
    rows = set()
    for sel in selections:
        assert isinstance(sel, slice) and sel.step == 3 and sel.start % 3 == 1
        rows.update(range(*sel.indices(20)))
    assert rows == set(range(1, 20, 3))


def test_training_arrays(tmp_path):
    from ffjord_kit.calorimeter.preprocessing import preprocess

    f, c = preprocess(read_calogan(_raw_file(tmp_path / "a.h5", n=9), rank=0, size=2))
    assert f.shape == (5, 507) and f.dtype == np.float32
    assert c.shape == (5, 1) and c.dtype == np.float32
    assert np.isfinite(f).all() and (np.abs(c) <= 1).all()


def test_nan_voxels_error_drop_zero(tmp_path):
    layer_1 = np.ones((6, 12, 12), np.float32)
    layer_1[2, 3, 4] = np.nan
    layer_1[4, 0, :2] = np.nan
    path = _raw_file(tmp_path / "a.h5", n=6, layer_1=layer_1)
    with pytest.raises(DataError, match=r"2 showers have NaN voxels \(layer_1: 3\)"):
        read_calogan(path)
    dropped = read_calogan(path, nan_policy="drop")
    assert len(dropped) == 4 and dropped.info["n_dropped"] == 2
    assert dropped.info["n_nan_voxels"]["layer_1"] == 3
    zeroed = read_calogan(path, nan_policy="zero")
    assert len(zeroed) == 6 and zeroed.layers[1][2, 3, 4] == 0 and np.isfinite(
        zeroed.layers[1]).all()


@pytest.mark.parametrize("override, message", [
    ({"layer_1": None}, r"missing key 'layer_1', expected shape \(N, 12, 12\)"),
    ({"layer_0": np.zeros((5, 3, 95), np.float32)},
     r"'layer_0' has shape \(5, 3, 95\), expected \(N, 3, 96\)"),
    ({"layer_2": np.zeros((5, 12, 6), np.int32)}, r"'layer_2' has dtype int32"),
    ({"layer_2": np.zeros((4, 12, 6), np.float32)}, r"'layer_2' has 4 events but 'energy' has 5"),
    ({"energy": np.zeros((5, 2), np.float32)}, r"'energy' has shape \(5, 2\), expected \(N, 1\)"),
    ({"energy": -np.ones((5, 1), np.float32)}, r"non-positive incident energies"),
    ({"energy": np.full((5, 1), np.nan, np.float32)}, r"5 NaN, infinite or non-positive"),
    ({"layer_1": -np.ones((5, 12, 12), np.float32)}, r"'layer_1' has 720 negative voxels"),
    ({"overflow": np.zeros((5, 2), np.float32)}, r"'overflow' has shape \(5, 2\), expected"),
])
def test_malformed_files(tmp_path, override, message):
    path = _raw_file(tmp_path / "bad.h5", n=5, **override)
    with pytest.raises(DataError, match=message):
        read_calogan(path)


def test_empty_and_non_hdf5_files(tmp_path):
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_calogan(tmp_path / "empty.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        read_calogan(tmp_path / "text.h5")
    with pytest.raises(DataError, match="no such file"):
        read_calogan(tmp_path / "missing.h5")
    zero = {k: np.zeros((0, *s), np.float32) for k, s in zip(LAYER_KEYS, LAYER_SHAPES,
                                                             strict=True)}
    path = _raw_file(tmp_path / "zero.h5", n=0, **zero)
    with pytest.raises(DataError, match="holds 0 events"):
        read_calogan(path)


def test_bad_settings_and_shower_shapes(tmp_path):
    path = _raw_file(tmp_path / "a.h5")
    with pytest.raises(UserError, match="nan_policy"):
        read_calogan(path, nan_policy="ignore")
    with pytest.raises(UserError, match="rank"):
        read_calogan(path, rank=2, size=2)
    with pytest.raises(UserError, match="unit_scale"):
        read_calogan(path, unit_scale=0.0)
    with pytest.raises(DataError, match=r"layer_1 has shape \(2, 12, 11\)"):
        ShowerSet(np.ones((2, 1)), (np.zeros((2, 3, 96)), np.zeros((2, 12, 11)),
                                    np.zeros((2, 12, 6))))


def test_cli_bad_input_one_line_and_input_untouched(tmp_path):
    bad = _raw_file(tmp_path / "bad.h5", n=5, layer_0=np.zeros((5, 3, 95), np.float32))
    good = _raw_file(tmp_path / "good.h5", n=5)
    before = hashlib.sha256(bad.read_bytes()).hexdigest()
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_calo.py"), "--reference",
                          str(good), "--generated", str(bad), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert "'layer_0' has shape (5, 3, 95), expected (N, 3, 96)" in res.stderr
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == before
    assert not (tmp_path / "rep").exists()
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "make_calorimeter_data.py"),
                          "--particle", "gamma", "--n", "0", "--out", str(tmp_path / "x.h5")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: --n must be >= 1")


def test_chunking_constant_is_positive():
    assert calo.DEFAULT_CHUNK_EVENTS > 0 and calo.N_VOXELS == 504


def test_readout_threshold_zeroes_small_voxels_only():
    from ffjord_kit.calorimeter.synthetic import generate_showers

    showers = generate_showers("gamma", 20, seed=3)
    noisy = calo.ShowerSet(showers.energy, tuple(layer + 2e-4 for layer in showers.layers))
    cut = noisy.with_readout_threshold(5e-4)
    for before, after in zip(noisy.layers, cut.layers, strict=True):
        assert np.all(after[before < 5e-4] == 0.0)
        np.testing.assert_array_equal(after[before >= 5e-4], before[before >= 5e-4])
    # The synthetic reference already has the 0.5 MeV threshold: nothing more to cut there.
    same = showers.with_readout_threshold(5e-4)
    for a, b in zip(showers.layers, same.layers, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=">= 0"):
        showers.with_readout_threshold(-1.0)
