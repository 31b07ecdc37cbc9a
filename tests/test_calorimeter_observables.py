"""Observables on hand-built showers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ffjord_kit.calorimeter.observables import (
    cell_centres_mm,
    mean_image_distance,
    mean_images,
    observable_specs,
    shower_observables,
)
from ffjord_kit.calorimeter.showers import ShowerSet


def _hand_built() -> ShowerSet:
    l0, l1, l2 = np.zeros((2, 3, 96)), np.zeros((2, 12, 12)), np.zeros((2, 12, 6))
    l0[0, 1, 47] = 1.0                     # shower 0: 1 GeV in one strip
    l1[0, 5, 5] = l1[0, 5, 6] = 2.0        # two 2 GeV cells side by side, layer 2 empty
    l1[1, 0, 0] = 1.0                      # shower 1: one corner cell ...
    l2[1, 0, 0], l2[1, 11, 5] = 3.0, 1.0   # ... and two opposite corners of layer 2
    return ShowerSet(np.array([[10.0], [20.0]]), (l0, l1, l2))


def test_energies_fractions_depth():
    o = shower_observables(_hand_built())
    np.testing.assert_allclose(o["E_total"], [5.0, 5.0])
    np.testing.assert_allclose(o["deposit_ratio"], [0.5, 0.25])
    np.testing.assert_allclose(np.stack([o[f"frac_layer_{i}"] for i in range(3)], 1),
                               [[0.2, 0.8, 0.0], [0.0, 0.2, 0.8]])
    np.testing.assert_allclose(o["shower_depth"], [0.8, 0.2 + 2 * 0.8])


def test_centroids_and_widths():
    o = shower_observables(_hand_built())
    # layer 0, strip (row 1, col 47): row centre 0 mm, column centre -2.5 mm, zero width
    assert o["centroid_x_layer_0"][0] == pytest.approx(-2.5)
    assert o["centroid_y_layer_0"][0] == pytest.approx(0.0)
    assert o["width_x_layer_0"][0] == pytest.approx(0.0)
    # layer 1, cells (5,5) and (5,6): x centres -20 and +20 mm -> centroid 0, width 20
    assert o["centroid_x_layer_1"][0] == pytest.approx(0.0, abs=1e-12)
    assert o["width_x_layer_1"][0] == pytest.approx(20.0)
    assert o["centroid_y_layer_1"][0] == pytest.approx(-20.0)
    assert o["width_y_layer_1"][0] == pytest.approx(0.0, abs=1e-6)
    # empty layer: undefined, NaN
    assert np.isnan(o["centroid_x_layer_2"][0]) and np.isnan(o["width_y_layer_2"][0])
    # layer 2, 3 GeV at (row 0, col 0) = (-220, -200) mm and 1 GeV at (row 11, col 5) = (220, 200)
    assert o["centroid_x_layer_2"][1] == pytest.approx(0.75 * -200 + 0.25 * 200)
    assert o["centroid_y_layer_2"][1] == pytest.approx(0.75 * -220 + 0.25 * 220)
    assert o["width_x_layer_2"][1] == pytest.approx(np.sqrt(0.75 * 0.25) * 400)
    assert o["width_y_layer_2"][1] == pytest.approx(np.sqrt(0.75 * 0.25) * 440)


def test_sparsity_and_brightest():
    o = shower_observables(_hand_built())
    np.testing.assert_allclose(o["sparsity_layer_1"], [2 / 144, 1 / 144])
    np.testing.assert_allclose(o["sparsity_layer_2"], [0.0, 2 / 72])
    np.testing.assert_allclose(o["brightest_layer_1"], [2.0, 1.0])
    assert o["brightest_ratio_layer_1"][0] == 0.0 and o["brightest_ratio_layer_1"][1] == 1.0
    assert o["brightest_ratio_layer_2"][1] == pytest.approx(0.5)
    # threshold: a 2 GeV cell is not "hit" above a 2.5 GeV threshold
    assert shower_observables(_hand_built(), threshold_gev=2.5)["sparsity_layer_1"][0] == 0.0


def test_mean_images_and_distance():
    s = _hand_built()
    img = mean_images(s)
    assert img[1][5, 5] == 1.0 and img[1][0, 0] == 0.5 and img[2][0, 0] == 1.5
    assert mean_image_distance(s, s) == {"layer_0": 0.0, "layer_1": 0.0, "layer_2": 0.0}
    doubled = ShowerSet(s.energy, tuple(2 * layer for layer in s.layers))
    assert mean_image_distance(s, doubled)["layer_1"] == pytest.approx(1.0)


def test_specs_cover_every_observable_and_geometry():
    assert set(observable_specs()) == set(shower_observables(_hand_built()))
    rows, cols = cell_centres_mm(2)
    assert rows[0] == -220 and cols[-1] == 200 and len(rows) == 12 and len(cols) == 6
