"""Physical-support sampling: bounded rejection, acceptance rate, renormalised density.

An untrained flow is exactly the standard normal in standardised time, so the truncated
distribution, its acceptance rate and its density are known in closed form."""

import numpy as np
import pytest
from scipy import stats

from ffjord_kit.flows.autoregressive_spline import AutoregressiveSplineConfig
from ffjord_kit.klm.model import KLMTimingModel
from ffjord_kit.klm.preprocessing import KLMPreprocessing
from ffjord_kit.klm.sampling import (
    UnreachableMinimumTime,
    sample_physical,
    truncated_density,
)

PREP = KLMPreprocessing((0.0, 2.0, 1.5, 0.5), (50.0, 0.3, 0.5, 1.0), time_mean=10.0,
                        time_std=4.0)


@pytest.fixture(scope="module")
def model():
    cfg = AutoregressiveSplineConfig(num_layers=2, hidden_units=8, hidden_layers=1)
    return KLMTimingModel.create(cfg, PREP)


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(-90, 90, 8000), rng.uniform(1, 3, 8000),
                            rng.uniform(0.7, 2.4, 8000), rng.uniform(0.3, 10, 8000)])


def test_samples_are_physical_with_the_expected_acceptance(model, context):
    res = sample_physical(model, context, np.random.default_rng(1), min_time=10.0)
    assert res.time.shape == (8000,) and (res.time >= 10.0).all()
    assert res.acceptance_rate == pytest.approx(0.5, abs=0.01)  # P(N(10, 4) >= 10)
    assert res.draws > 16000 and 2 <= res.rounds < 8
    # The accepted times follow the truncated normal exactly.
    trunc = stats.truncnorm(0.0, np.inf, loc=10.0, scale=4.0)
    assert stats.kstest(res.time, trunc.cdf).pvalue > 1e-3
    again = sample_physical(model, context, np.random.default_rng(1), min_time=10.0)
    np.testing.assert_array_equal(again.time, res.time)


def test_no_constraint_and_default_zero(model, context):
    free = sample_physical(model, context[:5000], np.random.default_rng(2), min_time=None)
    assert free.acceptance_rate == 1.0 and (free.time < 0).any()
    phys = sample_physical(model, context[:5000], np.random.default_rng(2))
    assert (phys.time >= 0).all() and phys.acceptance_rate == pytest.approx(
        stats.norm.sf(-2.5), abs=0.01)


def test_unreachable_minimum_time_stops_with_a_clear_message(model, context):
    with pytest.raises(UnreachableMinimumTime,
                       match=r"minimum time 60.0 ns unreachable: after 7 rounds 300 of 300"):
        sample_physical(model, context[:300], np.random.default_rng(3), min_time=60.0,
                        max_rounds=7)


def test_truncated_density_is_renormalised(model, context):
    grid = np.linspace(-10.0, 40.0, 2001)
    dens = truncated_density(model, grid, context[:20], np.random.default_rng(4),
                             min_time=10.0, n_mc=400)
    assert np.all(dens[grid < 10.0] == 0.0)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=0.06)
    expected = 2 * stats.norm.pdf(grid, 10.0, 4.0) * (grid >= 10.0)
    assert np.max(np.abs(dens - expected)[grid > 10.5]) < 0.02
