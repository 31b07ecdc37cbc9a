"""Conditional autoregressive RQ-spline flow: masks, invertibility, exact log-determinants,
normalisation, persistence and input errors."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

import ffjord_kit  # noqa: F401  (Keras 2 environment)
from ffjord_kit.errors import ConfigError, DataError, UserError
from ffjord_kit.flows.autoregressive_spline import (
    AutoregressiveSplineConfig,
    ConditionalAutoregressiveSplineFlow,
    made_masks,
)
from ffjord_kit.flows.base import load_metadata


def _per_sample_jacobian(fn, x):
    """(N, out, in) Jacobian of a row-wise map by one gradient per output (cheaper on CPU
    than batch_jacobian's vectorised loop)."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = fn(x)
        y = tf.reshape(y, [y.shape[0], -1])
        outs = [y[:, i] for i in range(y.shape[1])]
    return np.stack([tape.gradient(o, x).numpy() for o in outs], axis=1), y


def _flow(dim=3, context_dim=2, layers=3, scale=0.1, seed=1):
    cfg = AutoregressiveSplineConfig(dim=dim, context_dim=context_dim, num_layers=layers,
                                     hidden_units=12, hidden_layers=2, num_bins=6,
                                     tail_bound=3.0, seed=seed)
    flow = ConditionalAutoregressiveSplineFlow(cfg)
    rng = np.random.default_rng(seed + 100)
    # Random output weights: the identity initialisation would make every test trivial.
    for k in flow.conditioners.kernels[-1:]:
        k.assign(rng.normal(0.0, scale, k.shape).astype(np.float32))
    for b in flow.conditioners.biases[-1:]:
        b.assign(b + rng.normal(0.0, scale, b.shape).astype(np.float32))
    return flow


def test_made_masks_connect_output_d_only_to_earlier_inputs():
    dim, ctx, p = 4, 2, 5
    masks = made_masks(dim, ctx, hidden_units=9, hidden_layers=3, params_per_feature=p)
    conn = masks[0]
    for m in masks[1:]:
        conn = (conn @ m) > 0  # input -> output reachability
    conn = conn.reshape(dim + ctx, dim, p).any(axis=-1)
    for d in range(dim):
        assert not conn[d:dim, d].any(), f"output {d} sees x_{d} or later"
        assert conn[:d, d].all(), f"output {d} must see every earlier x"
        assert conn[dim:, d].all(), "every output must see the whole context"


def test_conditioner_jacobian_is_strictly_autoregressive():
    flow = _flow(dim=3)
    x = tf.random.stateless_normal([4, 3], seed=[1, 2])
    c = tf.random.stateless_normal([4, 2], seed=[3, 4])
    weights = flow.conditioners.per_layer()[0]
    jac, _ = _per_sample_jacobian(lambda v: flow.conditioners(v, c, weights), x)
    jac = np.abs(jac.reshape(4, 3, -1, 3)).max(axis=(0, 2))  # (out d, in j)
    assert np.all(np.triu(jac) == 0.0)
    assert np.all(np.tril(jac, -1)[np.tril_indices(3, -1)] > 0)


def test_one_dimensional_flow_ignores_x_in_its_conditioner():
    flow = _flow(dim=1, context_dim=4, layers=2)
    c = tf.random.stateless_normal([5, 4], seed=[5, 6])
    w = flow.conditioners.per_layer()[1]
    p1 = flow.conditioners(tf.zeros([5, 1]), c, w)
    p2 = flow.conditioners(tf.fill([5, 1], 3.0), c, w)
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())


@pytest.mark.parametrize("dim", [1, 3])
def test_inverse_round_trip_and_exact_log_det(dim):
    flow = _flow(dim=dim)
    x = tf.random.stateless_normal([6, dim], seed=[7, dim]) * 1.5
    c = tf.random.stateless_normal([6, 2], seed=[8, dim])
    jac, z = _per_sample_jacobian(lambda v: flow.to_latent(v, condition=c)[0], x)
    log_det = flow.to_latent(x, condition=c)[1]
    np.testing.assert_allclose(np.linalg.slogdet(jac)[1], log_det.numpy(), atol=2e-4)
    x_back, inv_log_det = flow.to_data(z, condition=c)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(inv_log_det.numpy(), -log_det.numpy(), atol=1e-4)


def test_context_changes_the_density():
    flow = _flow(dim=1, context_dim=2, scale=0.5)
    x = tf.fill([2, 1], 0.3)
    lp = flow.log_prob(x, condition=tf.constant([[0.0, 0.0], [2.0, -1.0]])).numpy()
    assert abs(lp[0] - lp[1]) > 1e-3


def test_density_integrates_to_one_for_a_fixed_context():
    flow = _flow(dim=1, context_dim=2, scale=0.2)  # larger: spikes the grid cannot resolve
    grid = np.linspace(-9.0, 9.0, 6001, dtype=np.float32)[:, None]
    c = np.tile(np.array([[0.5, -1.0]], np.float32), (len(grid), 1))
    dens = np.exp(flow.log_prob(grid, condition=c).numpy())
    assert np.trapezoid(dens, grid[:, 0]) == pytest.approx(1.0, abs=2e-3)


def test_untrained_flow_is_the_standard_normal():
    cfg = AutoregressiveSplineConfig(dim=2, context_dim=1, num_layers=2, hidden_units=8,
                                     hidden_layers=2)
    flow = ConditionalAutoregressiveSplineFlow(cfg)
    x = np.array([[0.3, -1.2], [2.0, 0.1]], np.float32)
    expected = -0.5 * (x ** 2).sum(axis=1) - np.log(2 * np.pi)
    np.testing.assert_allclose(flow.log_prob(x, condition=np.zeros((2, 1))).numpy(), expected,
                               atol=1e-5)


def test_save_load_gives_identical_densities_and_samples(tmp_path):
    flow = _flow(dim=2, context_dim=2, layers=2)
    c = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    x = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)
    flow.save(tmp_path / "flow", metadata={"note": "x"})
    again = ConditionalAutoregressiveSplineFlow.load(tmp_path / "flow")
    assert again.config == flow.config
    assert load_metadata(tmp_path / "flow") == {"note": "x"}
    np.testing.assert_array_equal(again.log_prob(x, condition=c).numpy(),
                                  flow.log_prob(x, condition=c).numpy())
    np.testing.assert_array_equal(again.sample(7, condition=c, seed=3).numpy(),
                                  flow.sample(7, condition=c, seed=3).numpy())


def test_seeded_samples_repeat_and_unconditional_flow_works():
    flow = _flow(dim=2, context_dim=0, layers=2)
    a = flow.sample(5, seed=11).numpy()
    np.testing.assert_array_equal(a, flow.sample(5, seed=11).numpy())
    assert a.shape == (5, 2) and np.isfinite(flow.log_prob(a).numpy()).all()


def test_bad_inputs_raise_clear_errors(tmp_path):
    flow = _flow(dim=1, context_dim=2, layers=1)
    with pytest.raises(DataError, match=r"this flow is conditional"):
        flow.log_prob(np.zeros((3, 1)))
    with pytest.raises(DataError, match=r"condition must have shape \(N, 2\)"):
        flow.log_prob(np.zeros((3, 1)), condition=np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"input must have shape \(N, 1\)"):
        flow.log_prob(np.zeros((3, 2)), condition=np.zeros((3, 2)))
    with pytest.raises(UserError, match="no saved flow"):
        ConditionalAutoregressiveSplineFlow.load(tmp_path / "missing")
    with pytest.raises(ConfigError, match="unknown model key"):
        AutoregressiveSplineConfig.from_dict({"layers": 3})
    other = ConditionalAutoregressiveSplineFlow(AutoregressiveSplineConfig(
        dim=1, context_dim=2, num_layers=2, hidden_units=20, hidden_layers=2, num_bins=6))
    flow.save(tmp_path / "flow")
    other.save(tmp_path / "other")
    for f in (tmp_path / "flow").glob("weights*"):  # weights of another architecture
        shutil.copy(f, tmp_path / "other" / f.name)
    with pytest.raises(UserError, match="missing or damaged"):
        ConditionalAutoregressiveSplineFlow.load(tmp_path / "other")
