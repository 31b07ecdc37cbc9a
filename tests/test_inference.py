"""Likelihood inference on the condition: posteriors, ML/MAP fits, intervals, profiles.

Most checks use closed-form likelihoods with the flows' `log_prob(x, condition=)` interface, so
the optimiser is tested exactly; one test runs the same code through a small real flow.
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from ffjord_kit import inference as inf
from ffjord_kit.errors import ConditionError, DataError, UserError
from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.toys.gaussians import AnalyticShiftedGaussianModel, ShiftedGaussian, TwoGaussians

TOY = ShiftedGaussian(-3.0, 3.0)
MODEL = AnalyticShiftedGaussianModel()
BOUNDS = (-3.0, 3.0)


def _draws(n=64, seed=0, low=-1.5, high=1.5):
    c = TOY.sample_conditions(n, seed=seed, low=low, high=high)
    return TOY.sample(c, seed=seed + 1), c[:, 0].astype(np.float64)


class _TwoModeModel:
    """ln[0.6 N(x; (c, c), I) + 0.4 N(x; (c - 4, c - 4), I)]: for x near 0, a global maximum
    near c = 0 and a lower local one near c = 4."""

    condition_dim, dim = 1, 2

    def log_prob(self, x, condition=None):
        x = tf.convert_to_tensor(x, tf.float32)
        c = tf.convert_to_tensor(condition, tf.float32)
        a = -0.5 * tf.reduce_sum((x - c) ** 2, 1) + np.log(0.6)
        b = -0.5 * tf.reduce_sum((x - c + 4.0) ** 2, 1) + np.log(0.4)
        return tf.reduce_logsumexp(tf.stack([a, b]), axis=0) - np.log(2 * np.pi)


# ----------------------------------------------------------------------------- toy data
def test_bayes_accuracy_matches_the_bayes_rule_on_samples():
    for toy in (TwoGaussians(), TwoGaussians(mean_1=0.5, mean_0=0.0, sigma=1.0),
                TwoGaussians(mean_1=0.5, mean_0=0.0, sigma=1.0, prior_1=0.8)):
        n1 = 40000
        n0 = int(round(n1 * (1 - toy.prior_1) / toy.prior_1))
        x1, _ = toy.sample(n1, seed=1)
        x0, _ = toy.sample(n0, seed=2)
        x = np.concatenate([x1, x0])  # sample() gives both classes; keep the right ones
        c = np.concatenate([toy.sample(n1, seed=1)[1], toy.sample(n0, seed=2)[1]])[:, 0]
        keep = np.concatenate([c[:2 * n1] == 1, c[2 * n1:] == 0])
        x, c = x[keep], c[keep]
        acc = np.mean((toy.posterior_1(x) > 0.5) == (c == 1))
        assert abs(acc - toy.bayes_accuracy()) < 4 * np.sqrt(0.25 / len(x)) + 1e-4
    assert TwoGaussians().bayes_accuracy() > 0.9999  # the tutorial's pair barely overlaps


def test_analytic_ml_estimator_is_the_argmax():
    x, _ = _draws(5)
    grid = np.linspace(-4, 4, 8001)
    for xi, est in zip(x, TOY.ml_estimate(x), strict=True):
        ll = TOY.log_density(np.repeat(xi[None], len(grid), 0), grid)
        assert abs(grid[np.argmax(ll)] - est) < 1.1e-3
    np.testing.assert_allclose(MODEL.log_prob(x, condition=np.ones((5, 1))).numpy(),
                               TOY.log_density(x, 1.0), rtol=1e-6)


# ----------------------------------------------------------------------------- posteriors
def test_class_posterior_rows_sum_to_one_and_match_the_analytic_posterior():
    x, _ = _draws(50)
    x = np.concatenate([x, [[60.0, -55.0]]]).astype(np.float32)  # far tail: no underflow
    cand = np.array([-0.5, 0.0, 1.0])
    prior = np.array([1.0, 2.0, 1.0])
    post = inf.class_posterior(MODEL, x, cand, prior=prior)
    np.testing.assert_allclose(post.sum(1), 1.0, atol=1e-12)
    ll = np.stack([TOY.log_density(x, ck) for ck in cand], 1) + np.log(prior / prior.sum())
    want = np.exp(ll - logsumexp(ll, axis=1, keepdims=True))
    np.testing.assert_allclose(post, want, atol=2e-5)
    assert np.all(np.isfinite(post))
    equal = inf.class_posterior(MODEL, x[:3], cand)
    assert not np.allclose(equal, post[:3])  # the prior matters


# ----------------------------------------------------------------------------- fits
def test_per_event_fit_recovers_the_analytic_optimum_and_curvature():
    x, _ = _draws(64)
    res = inf.fit_condition(MODEL, x, inf.grid_starts(BOUNDS, 3), bounds=BOUNDS)
    ml = TOY.ml_estimate(x)
    inside = ~res.at_bound[:, 0]
    assert inside.sum() >= 60
    np.testing.assert_allclose(res.condition[inside, 0], ml[inside], atol=1e-5)
    np.testing.assert_allclose(res.sigma[inside, 0], TOY.ml_sigma(1), rtol=1e-3)
    np.testing.assert_allclose(res.log_likelihood[inside],
                               TOY.log_density(x, ml)[inside], atol=1e-4)
    assert res.starts.shape == (64, 3, 1) and res.start_objective.shape == (64, 3)


def test_joint_fit_sums_the_events():
    x, _ = _draws(400)
    res = inf.fit_condition(MODEL, x, [0.0, 2.0], joint=True)
    assert res.condition.shape == (1, 1) and res.n_events == 400
    assert abs(res.condition[0, 0] - TOY.joint_ml_estimate(x)) < 1e-5
    assert abs(res.sigma[0, 0] - TOY.ml_sigma(400)) < 1e-3 * TOY.ml_sigma(400)
    lo, hi = inf.likelihood_interval(MODEL, x, res, joint=True)
    np.testing.assert_allclose([lo[0], hi[0]], res.condition[0, 0]
                               + np.array([-1, 1]) * TOY.ml_sigma(400), atol=1e-4)
    # (G, M, D): several data sets at once equal separate joint fits
    sets = x.reshape(4, 100, 2)
    many = inf.fit_condition(MODEL, sets, [0.0], joint=True)
    np.testing.assert_allclose(many.condition[:, 0], sets.reshape(4, -1).mean(1), atol=1e-5)


def test_batch_fits_equal_one_by_one_fits():
    x, _ = _draws(6, seed=3)
    starts = inf.grid_starts(BOUNDS, 2)
    together = inf.fit_condition(MODEL, x, starts, bounds=BOUNDS)
    for i in range(len(x)):
        alone = inf.fit_condition(MODEL, x[i:i + 1], starts, bounds=BOUNDS)
        np.testing.assert_allclose(alone.condition, together.condition[i:i + 1], atol=1e-6)
        np.testing.assert_allclose(alone.sigma, together.sigma[i:i + 1], rtol=1e-4)


def test_bounds_are_respected_and_equal_bounds_pin():
    x, _ = _draws(64)
    res = inf.fit_condition(MODEL, x, [0.7], bounds=(0.5, 1.0))
    c = res.condition[:, 0]
    assert np.all((c >= 0.5) & (c <= 1.0))
    np.testing.assert_allclose(c, np.clip(TOY.ml_estimate(x), 0.5, 1.0), atol=1e-5)
    assert np.array_equal(res.at_bound[:, 0], (TOY.ml_estimate(x) < 0.5)
                          | (TOY.ml_estimate(x) > 1.0))
    lo, hi = inf.likelihood_interval(MODEL, x, res, bounds=(0.5, 1.0))
    assert np.all(lo >= 0.5) and np.all(hi <= 1.0) and np.all(lo <= c) and np.all(c <= hi)
    pinned = inf.fit_condition(MODEL, x[:4], [0.0], bounds=(0.25, 0.25))
    np.testing.assert_array_equal(pinned.condition, 0.25)


def test_gaussian_prior_gives_the_analytic_map():
    x, _ = _draws(32)
    sigma_p = 0.8
    res = inf.fit_condition(MODEL, x, [0.0], prior=inf.gaussian_prior(0.5, sigma_p))
    prec = 2 + 1 / sigma_p**2  # posterior precision: D from the likelihood + prior
    want = (2 * TOY.ml_estimate(x) + 0.5 / sigma_p**2) / prec
    np.testing.assert_allclose(res.condition[:, 0], want, atol=1e-5)
    np.testing.assert_allclose(res.sigma[:, 0], 1 / np.sqrt(prec), rtol=1e-3)
    assert np.all(res.objective < res.log_likelihood + 1e-9)  # log prior <= 0 here


def test_several_starts_find_the_global_maximum():
    model = _TwoModeModel()
    x = np.array([[0.1, -0.1], [0.2, 0.0]], np.float32)
    one = inf.fit_condition(model, x, [4.5], bounds=(-2.0, 6.0))
    many = inf.fit_condition(model, x, inf.grid_starts((-2.0, 6.0), 4), bounds=(-2.0, 6.0))
    assert np.all(one.condition[:, 0] > 3.5)  # stuck on the local maximum
    assert np.all(np.abs(many.condition[:, 0] - x.mean(1)) < 0.05)
    assert np.all(many.objective > one.objective + 0.3)


def test_intervals_and_profiles_match_closed_forms():
    x, true_c = _draws(300, seed=5, low=-1.0, high=1.0)
    res = inf.fit_condition(MODEL, x, [0.0], bounds=(-6.0, 6.0))
    lo, hi = inf.likelihood_interval(MODEL, x, res, bounds=(-6.0, 6.0))
    half = TOY.ml_sigma(1)
    np.testing.assert_allclose(hi - res.condition[:, 0], half, atol=1e-4)
    np.testing.assert_allclose(res.condition[:, 0] - lo, half, atol=1e-4)
    coverage = np.mean((true_c >= lo) & (true_c <= hi))
    assert 0.6 < coverage < 0.76  # 68.3% expected, binomial spread 0.027
    grid = np.linspace(-3, 3, 13)
    prof = inf.profile_likelihood(MODEL, x[:3], grid)
    want = np.stack([TOY.log_density(np.repeat(x[i:i + 1], 13, 0), grid) for i in range(3)])
    np.testing.assert_allclose(prof, want, atol=1e-4)
    assert inf.profile_likelihood(MODEL, x[:20], grid, joint=True).shape == (13,)


def test_two_dimensional_condition_profile_and_covariance():
    model = AnalyticShiftedGaussianModel(dim=2, condition_dim=2)
    x = np.array([[0.3, -0.8], [1.2, 0.4]], np.float32)
    res = inf.fit_condition(model, x, [[0.0, 0.0], [1.0, -1.0]], bounds=([-3, -3], [3, 3]))
    np.testing.assert_allclose(res.condition, x, atol=1e-5)
    np.testing.assert_allclose(res.covariance, np.broadcast_to(np.eye(2), (2, 2, 2)),
                               atol=2e-3)
    grid = np.linspace(-2.0, 2.0, 41)
    prof = inf.profile_likelihood(model, x[:1], grid, index=0, bounds=([-3, -3], [3, 3]),
                                  init=[[0.0, 0.0]], steps=40)
    # profiling c_1 away leaves -0.5 (x_0 - c_0)^2 - ln 2 pi
    np.testing.assert_allclose(prof[0], -0.5 * (x[0, 0] - grid) ** 2 - np.log(2 * np.pi),
                               atol=1e-4)
    lo, hi = inf.interval_from_profile(grid, prof[0])
    assert abs(lo - (x[0, 0] - 1)) < 3e-3 and abs(hi - (x[0, 0] + 1)) < 3e-3
    with pytest.raises(ConditionError, match="one-dimensional"):
        inf.likelihood_interval(model, x, res)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors():
    x, _ = _draws(4)
    with pytest.raises(ConditionError, match=r"lower > upper.*shape \(1,\)"):
        inf.fit_condition(MODEL, x, [0.0], bounds=(1.0, -1.0))
    with pytest.raises(ConditionError, match=r"init must have shape \(S, 1\)"):
        inf.fit_condition(MODEL, x, np.zeros((4, 2, 3)))
    with pytest.raises(ConditionError, match="numeric"):
        inf.fit_condition(MODEL, x, ["a"])
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        inf.fit_condition(MODEL, x[:, :1], [0.0])
    with pytest.raises(DataError, match="NaN"):
        inf.fit_condition(MODEL, np.where(np.eye(4, 2) > 0, np.nan, x), [0.0])
    with pytest.raises(ConditionError, match=r"shape \(K, 1\)"):
        inf.class_posterior(MODEL, x, np.zeros((2, 3)))
    with pytest.raises(ConditionError, match=r"shape \(2,\)"):
        inf.class_posterior(MODEL, x, [0.0, 1.0], prior=[1.0, -1.0])
    for err in (ConditionError, DataError):
        assert issubclass(err, UserError)  # one-line CLI messages


def test_flow_condition_checks_and_unconditional_flow():
    flow = ContinuousFlow(FlowConfig(dim=2, condition_dim=1, backbone_kwargs={"hidden": [4]},
                                     eval_solver="rk4", eval_solver_kwargs={"num_steps": 2}))
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ConditionError, match=r"\(N, 1\)"):
        flow.log_prob(x)  # missing condition
    with pytest.raises(ConditionError, match="numeric"):
        flow.log_prob(x, condition=np.array(["a", "b", "c"]))
    with pytest.raises(ConditionError, match=r"expected shape \(3, 1\)"):
        flow.log_prob(x, condition=np.zeros((2, 1)))
    plain = ContinuousFlow(FlowConfig(dim=2, backbone_kwargs={"hidden": [4]}))
    with pytest.raises(ConditionError, match="condition"):
        inf.fit_condition(plain, x, [0.0])
    with pytest.raises(ConditionError, match="unconditional"):
        plain.log_prob(x, condition=np.zeros((3, 1)))


# ----------------------------------------------------------------------------- real flow
def test_fit_through_a_real_flow():
    """A small random conditional flow: the RK4 likelihood agrees with Dopri5, the fit is the
    grid maximum of its own likelihood, and batch equals one-by-one."""
    cfg = FlowConfig(dim=2, condition_dim=1, backbone_kwargs={"hidden": [8, 8]}, seed=3)
    flow = ContinuousFlow(cfg)
    g = tf.random.Generator.from_seed(0)
    for v in flow.trainable_variables:  # a non-trivial dependence on c
        v.assign(v + g.normal(v.shape, stddev=0.3))
    lik = inf.rk4_likelihood(flow, num_steps=6)
    lik.jit_compile = False  # an XLA compile costs more than this small test's evaluations
    x = np.array([[0.5, -0.2], [-1.0, 0.8], [0.1, 0.1]], np.float32)
    c = np.full((3, 1), 0.4, np.float32)
    np.testing.assert_allclose(lik.log_prob(x, condition=c).numpy(),
                               flow.log_prob(x, condition=c).numpy(), atol=5e-3)
    bounds = (-2.0, 2.0)
    res = inf.fit_condition(lik, x, inf.grid_starts(bounds, 3), bounds=bounds, steps=40)
    grid = np.linspace(-2, 2, 201)
    prof = inf.profile_likelihood(lik, x, grid)
    best = grid[np.argmax(prof, axis=1)]
    np.testing.assert_allclose(res.condition[:, 0], best, atol=0.021)
    assert np.all(res.log_likelihood >= prof.max(1) - 1e-4)
    one = inf.fit_condition(lik, x[1:2], inf.grid_starts(bounds, 3), bounds=bounds, steps=40)
    np.testing.assert_allclose(one.condition, res.condition[1:2], atol=1e-4)


def test_fit_condition_recovers_a_known_condition_through_a_spline_flow(tmp_path):
    """Inference works over the flow contract: a conditional spline coupling flow trained by
    the one Trainer on x ~ N((c, c), I) recovers c from 400 events (joint fit), with an
    interval that covers it, and classifies between two candidate conditions."""
    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow, SplineFlowConfig
    from ffjord_kit.training import ArrayData, ShardedBatches, Trainer, TrainSettings

    c = TOY.sample_conditions(8192, seed=11)
    data = ArrayData(TOY.sample(c, seed=12), c)
    flow = SplineCouplingFlow(SplineFlowConfig(features=2, context_features=1,
                                               num_flow_steps=2, hidden=32, num_blocks=1,
                                               num_bins=8, tail_bound=4.0, batch_norm=False))
    Trainer(flow, TrainSettings(lr=5e-3, max_epochs=3, early_stop=0, schedule="cosine_epoch",
                                min_lr=1e-4, jit_compile=False),
            run_dir=tmp_path, log=lambda m: None, progress=False, tensorboard=False).fit(
        ShardedBatches(data, SingleProcess(), 256, seed=0),
        ShardedBatches(ArrayData(data.x[:1024], data.condition[:1024]), SingleProcess(), 1024,
                       seed=0, shuffle=False))
    true_c = 1.2
    x = TOY.sample(np.full((400, 1), true_c), seed=13)
    fit = inf.fit_condition(flow, x, inf.grid_starts(BOUNDS, 3), bounds=BOUNDS, joint=True,
                            steps=60)
    # The statistical error of the joint fit is 1 / sqrt(2 * 400) = 0.035.
    assert abs(fit.condition[0, 0] - true_c) < 0.15
    lo, hi = inf.likelihood_interval(flow, x, fit, bounds=BOUNDS, joint=True)
    assert lo[0] < fit.condition[0, 0] < hi[0] and 0.02 < hi[0] - lo[0] < 0.2
    post = inf.class_posterior(flow, x[:50], [[true_c], [-true_c]])
    assert post[:, 0].mean() > 0.9
