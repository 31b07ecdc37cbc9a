"""The train_parallel backbones: shapes, registration, deterministic variants, forward-mode
Jacobian, and a few training steps of a flow on each (tiny shapes, eager)."""

import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit import backbones  # noqa: F401
from ffjord_kit.backbones.calorimeter_branches import N_FEATURES
from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.networks import BACKBONES

CASES = {
    "dense_unet": (3, 1, {"layer_sizes": [8, 6, 4]}),
    "conv_unet": (49, 1, {"image_shape": [7, 7, 1], "channels": [4, 8, 8]}),
    "calorimeter_branches": (N_FEATURES, 1, {"channels": [4, 8], "global_width": 8,
                                             "energy_layer_sizes": [8, 4]}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_shapes_and_settings(name):
    dim, cdim, kw = CASES[name]
    x, c = tf.random.normal([5, dim], seed=1), tf.fill([5, cdim], 0.3)
    plain = BACKBONES[name](dim=dim, condition_dim=cdim, seed=2, **kw)
    f = plain(0.5, x, c, training=True)
    assert f.shape == (5, dim)
    # Without dropout and batch norm, training and inference modes are the same function.
    np.testing.assert_allclose(f, plain(0.5, x, c, training=False), rtol=1e-6)
    # The condition and the time change the field.
    assert not np.allclose(f, plain(0.5, x, c + 0.5))
    assert not np.allclose(f, plain(0.9, x, c))
    noisy = BACKBONES[name](dim=dim, condition_dim=cdim, seed=2, dropout=0.5, batch_norm=True,
                            **kw)
    assert len(noisy.variables) > len(plain.variables)  # batch-norm scale/shift/statistics
    assert not np.allclose(noisy(0.5, x, c, training=True), noisy(0.5, x, c, training=True))


def test_dense_unet_forward_mode_jacobian_matches_autodiff():
    net = BACKBONES["dense_unet"](dim=3, condition_dim=2, layer_sizes=[8, 6, 4], seed=4)
    x, c = tf.random.normal([4, 3], seed=2), tf.random.normal([4, 2], seed=3)
    f, jac = net.value_and_jacobian(0.4, x, c)
    with tf.GradientTape() as tape:
        tape.watch(x)
        f2 = net(0.4, x, c)
    np.testing.assert_allclose(f, f2, rtol=1e-6)
    np.testing.assert_allclose(jac, tape.batch_jacobian(f2, x), atol=1e-6)
    assert not hasattr(BACKBONES["dense_unet"](dim=3, batch_norm=True), "value_and_jacobian")


def test_bad_shapes_rejected():
    with pytest.raises(ValueError, match="H\\*W\\*C = 50"):
        BACKBONES["conv_unet"](dim=50, image_shape=[7, 7, 1])
    with pytest.raises(ValueError, match="needs dim 507"):
        BACKBONES["calorimeter_branches"](dim=500)


@pytest.mark.parametrize("name", list(CASES))
def test_flow_trains_a_few_steps(name):
    dim, cdim, kw = CASES[name]
    flow = ContinuousFlow(FlowConfig(dim=dim, condition_dim=cdim, backbone=name,
                                     backbone_kwargs=kw, train_solver_kwargs={"num_steps": 1},
                                     train_trace="hutchinson_rademacher", seed=1))
    rng = np.random.default_rng(0)
    x = (0.5 * rng.standard_normal((16, dim)) + 1.0).astype(np.float32)
    c = np.full((16, cdim), 0.2, np.float32)
    import tf_keras
    opt = tf_keras.optimizers.Adam(1e-2)
    variables = flow.trainable_variables
    losses = []
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss, _ = flow.loss(x, c, kinetic=0.01, jacobian=0.01)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


@pytest.mark.parametrize("backbone, kwargs, dim", [
    ("dense_unet", {"layer_sizes": [32, 16], "activation": "tanh", "batch_norm": True}, 6),
    ("conv_unet", {"image_shape": [8, 8, 1], "channels": [4, 8]}, 64),
])
def test_bfloat16_backbone_float32_weights_state_and_log_prob(backbone, kwargs, dim):
    def flow(precision):
        return ContinuousFlow(FlowConfig(
            dim=dim, condition_dim=2, backbone=backbone, backbone_kwargs=kwargs,
            precision=precision, train_trace="hutchinson_gaussian", eval_solver="rk4",
            eval_solver_kwargs={"num_steps": 4}, eval_trace="exact"))

    f32, b16 = flow("float32"), flow("bfloat16")
    for src, dst in zip(f32.trainable_variables, b16.trainable_variables, strict=True):
        assert dst.dtype == tf.float32
        dst.assign(src)
    assert b16.backbones[0].core.output_layer.compute_dtype == "bfloat16"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, dim)).astype("float32")
    c = rng.normal(size=(16, 2)).astype("float32")
    lp16, lp32 = b16.log_prob(x, condition=c), f32.log_prob(x, condition=c)
    assert lp16.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: log p within 0.5% (measured 0.2% here).
    np.testing.assert_allclose(lp16.numpy(), lp32.numpy(), rtol=5e-3)
    loss, _ = b16.loss(x, c, training=True)
    assert np.isfinite(loss.numpy())
    with pytest.raises(ValueError, match="precision"):
        FlowConfig(dim=2, backbone="mlp", precision="bfloat16")
