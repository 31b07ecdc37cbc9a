"""CaloFlow preprocessing: shapes, exact inverse (including empty layers), bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ffjord_kit.calorimeter.preprocessing import (
    ALPHA,
    N_FEATURES,
    inverse_logit_alpha,
    layer_energies_from_variables,
    layer_energy_variables,
    logit_alpha,
    postprocess,
    preprocess,
)
from ffjord_kit.calorimeter.showers import ShowerSet
from ffjord_kit.calorimeter.synthetic import generate_showers
from ffjord_kit.errors import DataError


def _with_empty_layers(showers: ShowerSet) -> ShowerSet:
    layers = [layer.copy() for layer in showers.layers]
    layers[0][0] = 0.0              # empty first layer
    layers[2][1] = 0.0              # empty last layer
    layers[1][2] = 0.0
    layers[2][2] = 0.0              # E_1 + E_2 = 0: u2 has a zero denominator
    for layer in layers:
        layer[3] = 0.0              # a shower with no deposit at all
    return ShowerSet(showers.energy, tuple(layers))


@pytest.mark.parametrize("particle", ["gamma", "piplus"])
def test_round_trip_voxels_and_layer_energies(particle):
    showers = _with_empty_layers(generate_showers(particle, 400, seed=3))
    features, condition = preprocess(showers)
    assert features.shape == (400, N_FEATURES) and features.dtype == np.float32
    assert condition.shape == (400, 1) and condition.dtype == np.float32
    assert np.isfinite(features).all()
    np.testing.assert_allclose(condition[:, 0], np.log10(showers.energy[:, 0] / 10), atol=1e-6)
    back = postprocess(features, condition)
    np.testing.assert_allclose(back.energy, showers.energy, rtol=1e-6)
    np.testing.assert_allclose(back.layer_energies(), showers.layer_energies(), rtol=1e-5,
                               atol=0)
    v, w = showers.voxels().astype(np.float64), back.voxels().astype(np.float64)
    assert np.array_equal(v == 0, w == 0)  # zeros stay exactly zero, hits stay hits
    hit = v > 0
    # Voxels holding more than 1e-5 of their layer: 1e-5 relative (module docstring).
    np.testing.assert_allclose(w[hit], v[hit], rtol=1e-5)
    assert back.layer_energies()[0, 0] == 0 and back.layer_energies()[1, 2] == 0
    assert (back.layer_energies()[3] == 0).all()


def test_layer_energy_variables_inverse_and_ranges():
    rng = np.random.default_rng(0)
    e = rng.exponential(1.0, (50, 3))
    e[0, 1:] = 0.0
    energy = (e.sum(axis=1) / rng.uniform(0.1, 0.99, 50))[:, None]
    u = layer_energy_variables(e, energy)
    assert ((u >= 0) & (u <= 1)).all() and (u[:, 0] < 1).all()
    assert u[0, 1] == 1.0 and u[0, 2] == 0.0  # everything in layer 0
    np.testing.assert_allclose(layer_energies_from_variables(u, energy), e, rtol=1e-12,
                               atol=1e-15)


def test_logit_alpha_inverse_and_bounds():
    x = np.array([0.0, 1e-9, 0.3, 1.0])
    np.testing.assert_allclose(inverse_logit_alpha(logit_alpha(x)), x, atol=1e-15)
    assert logit_alpha(np.array([0.0]))[0] == pytest.approx(np.log(ALPHA / (1 - ALPHA)))


def test_postprocess_of_arbitrary_features_is_physical():
    rng = np.random.default_rng(1)
    features = rng.normal(0.0, 5.0, (64, N_FEATURES)).astype(np.float32)
    features[5, 7] = np.nan
    condition = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    s = postprocess(features, condition)
    assert s.info["n_nonfinite_rows"] == 1
    assert all((layer >= 0).all() and np.isfinite(layer).all() for layer in s.layers)
    assert (s.voxels()[5] == 0).all()
    deposited = s.layer_energies().sum(axis=1)
    assert (deposited <= s.energy[:, 0] * (1 + 1e-6)).all()  # u0 in [0, 1]: conservation
    # The u-variables alone fix the layer energies: renormalised voxels sum to them.
    x = 1 / (1 + np.exp(-features[:, -3:].astype(np.float64)))
    u = np.clip((x - ALPHA) / (1 - 2 * ALPHA), 0, 1)
    expected = layer_energies_from_variables(u, s.energy)
    ok = np.isfinite(features).all(axis=1)
    np.testing.assert_allclose(s.layer_energies()[ok], expected[ok], rtol=1e-5, atol=1e-12)


def test_bad_inputs():
    showers = generate_showers("gamma", 4, seed=0)
    too_much = ShowerSet(showers.energy * 1e-3, showers.layers)
    with pytest.raises(DataError, match="deposit at least their incident energy.*unit_scale"):
        preprocess(too_much)
    with pytest.raises(DataError, match=r"features have shape \(4, 506\), expected \(N, 507\)"):
        postprocess(np.zeros((4, 506), np.float32), np.zeros((4, 1), np.float32))
    with pytest.raises(DataError, match=r"condition has shape \(3, 1\), expected \(4, 1\)"):
        postprocess(np.zeros((4, 507), np.float32), np.zeros((3, 1), np.float32))
