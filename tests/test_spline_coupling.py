"""SplineCouplingFlow: exact inverse, log-det vs brute-force Jacobian, save/load, training."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from ffjord_kit.errors import ConfigError, DataError, UserError
from ffjord_kit.flows.linear_lu import LULinear
from ffjord_kit.flows.spline_coupling import SplineCouplingFlow, SplineFlowConfig

SMALL = dict(features=5, context_features=3, num_flow_steps=4, hidden=16, num_blocks=2,
             num_bins=8, tail_bound=2.0)


def _perturbed_flow(seed=0, dtype=tf.float64, stddev=0.3, **over):
    flow = SplineCouplingFlow(SplineFlowConfig(**{**SMALL, **over}), dtype=dtype)
    g = tf.random.Generator.from_seed(seed)
    for v in flow.trainable_variables:  # move away from the identity initialisation
        v.assign(v + g.normal(v.shape, stddev=stddev, dtype=dtype))
    return flow


def _data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 5)).astype("float32") * 1.5,
            rng.normal(size=(n, 3)).astype("float32"))


def test_inverse_of_forward_and_log_dets_cancel():
    x, c = _data()
    flow = _perturbed_flow()  # float64: exact up to rounding
    z, ld = flow.to_latent(x, condition=c)
    xr, ld_back = flow.to_data(z, condition=c)
    np.testing.assert_allclose(xr.numpy(), x, atol=1e-9)
    np.testing.assert_allclose(ld.numpy(), -ld_back.numpy(), atol=1e-8)
    # float32, weights moved moderately from the identity: 1e-5 round trip.
    flow32 = _perturbed_flow(dtype=tf.float32, stddev=0.05)
    z, ld = flow32.to_latent(x, condition=c)
    assert z.dtype == tf.float32 and not np.allclose(z.numpy(), x, atol=0.05)
    np.testing.assert_allclose(flow32.to_data(z, condition=c)[0].numpy(), x, atol=1e-5)


def test_log_det_equals_brute_force_jacobian():
    flow = _perturbed_flow(seed=3)
    x, c = _data(16)
    xt = tf.constant(x, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        z, ld = flow.to_latent(xt, condition=c)
        rows = [z[:, i] for i in range(5)]
    # Row i of each sample's Jacobian: samples are independent (no training-mode batch norm).
    jac = np.stack([tape.gradient(r, xt).numpy() for r in rows], axis=1)
    np.testing.assert_allclose(np.linalg.slogdet(jac)[1], ld.numpy(), atol=1e-9)
    # And with finite differences, independent of autodiff (central, step 1e-6).
    eps, fd = 1e-6, np.zeros_like(jac)
    for j in range(5):
        dx = np.zeros_like(x, dtype=np.float64)
        dx[:, j] = eps
        fd[:, :, j] = (flow.to_latent(x + dx, condition=c)[0]
                       - flow.to_latent(x - dx, condition=c)[0]).numpy() / (2 * eps)
    np.testing.assert_allclose(np.linalg.slogdet(fd)[1], ld.numpy(), atol=1e-5)
    assert np.all(np.linalg.slogdet(jac)[0] > 0)


def test_lu_linear_identity_init_and_exact_inverse():
    lu = LULinear(4)
    x = tf.constant(np.random.default_rng(0).normal(size=(10, 4)), tf.float32)
    z, ld = lu.to_noise(x)
    np.testing.assert_allclose(z.numpy(), x.numpy(), atol=1e-6)
    np.testing.assert_allclose(ld.numpy(), 0.0, atol=1e-6)
    for v in lu.trainable_variables:
        v.assign(v + 0.4 * tf.random.stateless_normal(v.shape, [1, 2]))
    z, ld = lu.to_noise(x)
    w = np.linalg.lstsq(x.numpy(), (z - lu.bias).numpy(), rcond=None)[0].T
    np.testing.assert_allclose(ld.numpy(), np.linalg.slogdet(w)[1], atol=1e-4)
    np.testing.assert_allclose(lu.to_data(z)[0].numpy(), x.numpy(), atol=1e-5)
    assert sum(int(np.prod(v.shape)) for v in lu.trainable_variables) == 4 * 4 + 4


def test_log_prob_normalised_in_2d():
    # Integrate p(x | c) over a grid: a proper density integrates to 1 (the tails are identity,
    # so the grid must cover the Normal base well beyond the spline's [-B, B]).
    flow = _perturbed_flow(seed=4, features=2, context_features=1, num_flow_steps=2)
    g = np.linspace(-9, 9, 301).astype("float32")
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    lp = flow.log_prob(pts, condition=np.full((len(pts), 1), 0.7, "float32")).numpy()
    total = np.exp(lp).sum() * (g[1] - g[0]) ** 2
    assert abs(total - 1.0) < 0.02


def test_save_load_identical_and_bad_paths(tmp_path):
    flow = _perturbed_flow(seed=5)
    x, c = _data()
    # One training-mode pass moves the batch-norm statistics, which must survive save/load too.
    flow.log_prob(x, condition=c, training=True)
    flow.save(tmp_path / "model")
    loaded = SplineCouplingFlow.load(tmp_path / "model")
    np.testing.assert_array_equal(flow.log_prob(x, condition=c).numpy(),
                                  loaded.log_prob(x, condition=c).numpy())
    np.testing.assert_array_equal(flow.sample(len(c), c, seed=7).numpy(),
                                  loaded.sample(len(c), c, seed=7).numpy())
    with pytest.raises(UserError, match="no saved flow"):
        SplineCouplingFlow.load(tmp_path / "missing")
    # One loader for every family; a folder of another family is a one-line error.
    from ffjord_kit.flows import ConditionalAutoregressiveSplineFlow, ContinuousFlow, load_flow

    assert type(load_flow(tmp_path / "model")) is SplineCouplingFlow
    for other in (ContinuousFlow, ConditionalAutoregressiveSplineFlow):
        with pytest.raises(UserError, match="holds a spline_coupling flow, not a") as err:
            other.load(tmp_path / "model")
        assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"\(N, 3\)"):
        flow.log_prob(x, condition=c[:, :2])
    with pytest.raises(ConfigError, match="unknown flow setting"):
        SplineFlowConfig.from_dict({**SMALL, "bins": 3})


def test_training_lowers_nll_and_learns_condition():
    tf_keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    c = rng.uniform(-1, 1, size=(2048, 1)).astype("float32")
    # x0 depends on the condition, x1 on x0: a conditional, correlated target.
    x0 = 2.0 * c[:, 0] + 0.3 * rng.normal(size=2048)
    x = np.stack([x0, np.sin(2 * x0) + 0.2 * rng.normal(size=2048)], 1).astype("float32")
    flow = SplineCouplingFlow(SplineFlowConfig(features=2, context_features=1, num_flow_steps=2,
                                               hidden=32, num_blocks=1, num_bins=8,
                                               tail_bound=3.0))
    opt = tf_keras.optimizers.Adam(5e-3)

    @tf.function
    def step(xb, cb):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(xb, condition=cb, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, flow.trainable_variables),
                                flow.trainable_variables, strict=True))
        return loss

    first = -float(tf.reduce_mean(flow.log_prob(x, condition=c)))
    for _ in range(100):
        idx = rng.integers(0, 2048, 256)
        step(x[idx], c[idx])
    last = -float(tf.reduce_mean(flow.log_prob(x, condition=c)))
    assert last < first - 1.0
    s_lo = flow.sample(2000, condition=-0.8, seed=1).numpy()
    s_hi = flow.sample(2000, condition=0.8, seed=1).numpy()
    assert abs(s_lo[:, 0].mean() + 1.6) < 0.3 and abs(s_hi[:, 0].mean() - 1.6) < 0.3


def test_fused_linear_steps_equal_the_layers_one_by_one():
    # The flow folds permutation, LU map and the coupling's split into one D x D matmul per
    # step; the result must be the layers applied one by one, in both modes of batch norm.
    x, c = _data(seed=5)
    flow = _perturbed_flow(seed=3)
    for training in (False, True):
        z, ld = flow.to_latent(x, condition=c, training=training)
        z_ref, ld_ref = flow._layerwise_to_latent(x, condition=c, training=training)
        np.testing.assert_allclose(z.numpy(), z_ref.numpy(), atol=1e-12)
        np.testing.assert_allclose(ld.numpy(), ld_ref.numpy(), atol=1e-12)
    # An even feature count too (equal halves).
    flow6 = SplineCouplingFlow(SplineFlowConfig(**{**SMALL, "features": 6}), dtype=tf.float64)
    x6 = np.random.default_rng(6).normal(size=(20, 6))
    z, ld = flow6.to_latent(x6, condition=c[:20])
    z_ref, ld_ref = flow6._layerwise_to_latent(x6, condition=c[:20])
    np.testing.assert_allclose(z.numpy(), z_ref.numpy(), atol=1e-12)


def test_bfloat16_precision_keeps_float32_weights_spline_and_log_prob(tmp_path):
    x, c = _data(n=256, seed=7)
    f32 = _perturbed_flow(seed=4, dtype=tf.float32, stddev=0.05)
    b16 = SplineCouplingFlow(SplineFlowConfig(**SMALL, precision="bfloat16"))
    for src, dst in zip(f32.trainable_variables, b16.trainable_variables, strict=True):
        assert dst.dtype == tf.float32
        dst.assign(src)
    cond = b16.steps[0][2].conditioner
    assert cond.compute_dtype == "bfloat16" and cond.blocks[0].dense0.compute_dtype == "bfloat16"
    lp16 = b16.log_prob(x, condition=c)
    assert lp16.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: log p agrees to about 1e-2 nats per event here.
    diff = np.abs(lp16.numpy() - f32.log_prob(x, condition=c).numpy())
    assert np.median(diff) < 0.02 and diff.max() < 0.2, (np.median(diff), diff.max())
    # The setting is part of the saved config; the weights load into either precision.
    b16.save(tmp_path / "m")
    loaded = SplineCouplingFlow.load(tmp_path / "m")
    assert loaded.config.precision == "bfloat16"
    np.testing.assert_array_equal(loaded.log_prob(x, condition=c).numpy(), lp16.numpy())
    with pytest.raises(ConfigError, match="precision"):
        SplineFlowConfig(**SMALL, precision="float16")
    with pytest.raises(ConfigError, match="float32 flow"):
        SplineCouplingFlow(SplineFlowConfig(**SMALL, precision="bfloat16"), dtype=tf.float64)
