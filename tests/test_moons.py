"""Two-moons data and its exact density."""

import numpy as np

from ffjord_kit.toys.moons import moons_log_density, sample_moons


def test_exact_density_integrates_to_one():
    xs, ys = np.linspace(-2.0, 3.0, 300), np.linspace(-1.5, 2.0, 220)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    p = np.exp(moons_log_density(grid, n_t=1000))
    assert abs(p.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]) - 1.0) < 2e-3


def test_density_matches_sample_histogram():
    x = sample_moons(200_000, seed=1)
    assert x.shape == (200_000, 2) and x.dtype == np.float32
    h, ex, ey = np.histogram2d(x[:, 0], x[:, 1], bins=[np.linspace(-1.2, 2.2, 18),
                                                        np.linspace(-0.8, 1.3, 12)])
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    centers = np.stack(np.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 2)
    # bins are wide compared with the noise: average the density over each bin on a sub-grid
    sub = (np.arange(16) + 0.5) / 16 - 0.5  # midpoints of a 16 x 16 sub-grid
    dx, dy = ex[1] - ex[0], ey[1] - ey[0]
    offs = np.stack(np.meshgrid(sub * dx, sub * dy), -1).reshape(-1, 2)
    p = np.exp(moons_log_density((centers[:, None] + offs[None]).reshape(-1, 2), n_t=800))
    expected = p.reshape(len(centers), -1).mean(1) * dx * dy * len(x)
    observed = h.ravel()
    big = expected > 200
    assert np.all(np.abs(observed[big] - expected[big]) < 5 * np.sqrt(expected[big]) + 0.02 *
                  expected[big])


def test_seeded_and_balanced():
    a, b = sample_moons(1001, seed=5), sample_moons(1001, seed=5)
    np.testing.assert_array_equal(a, b)
    outer = np.abs(np.hypot(a[:, 0], a[:, 1]) - 1.0) < 0.25
    assert 0.4 < outer.mean() < 0.6
