"""Rational-quadratic spline: exact inverse, log-det vs autodiff, identity tails, safe gradients."""

import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit.flows.rq_spline import (
    SplineSettings,
    apply_rq_spline,
    identity_slope_logit,
    num_spline_params,
    rq_spline_forward,
    rq_spline_inverse,
    spline_knots,
)


def _params(rng, n, d, k, scale, dtype):
    return tf.constant(rng.normal(size=(n, d, num_spline_params(k))) * scale, dtype)


@pytest.mark.parametrize("num_bins", [1, 8, 128])
def test_round_trip_float64_extreme_params(num_bins):
    rng = np.random.default_rng(0)
    s = SplineSettings(num_bins=num_bins, tail_bound=2.0)
    knots = spline_knots(_params(rng, 500, 3, num_bins, 3.0, tf.float64), s)
    x = tf.constant(rng.uniform(-3, 3, size=(500, 3)))
    y, ld = rq_spline_forward(x, knots)
    xr, ldi = rq_spline_inverse(y, knots)
    np.testing.assert_allclose(xr.numpy(), x.numpy(), atol=1e-9)
    np.testing.assert_allclose(ld.numpy(), -ldi.numpy(), atol=1e-8)
    # Monotonic increasing, onto [-B, B].
    xs = tf.constant(np.linspace(-1.99, 1.99, 400)[:, None])
    one = spline_knots(_params(rng, 1, 1, num_bins, 3.0, tf.float64), s)
    ys = rq_spline_forward(xs, one)[0].numpy()[:, 0]
    assert np.all(np.diff(ys) > 0) and ys.min() > -2 and ys.max() < 2


def test_round_trip_float32_to_1e5():
    rng = np.random.default_rng(1)
    for k in (8, 128):
        s = SplineSettings(num_bins=k)
        knots = spline_knots(_params(rng, 2000, 4, k, 0.5, tf.float32), s)
        x = tf.constant(rng.uniform(-1.3, 1.3, size=(2000, 4)), tf.float32)
        y, _ = rq_spline_forward(x, knots)
        np.testing.assert_allclose(rq_spline_inverse(y, knots)[0].numpy(), x.numpy(), atol=1e-5)
        np.testing.assert_allclose(rq_spline_forward(rq_spline_inverse(x, knots)[0], knots)[0],
                                   x.numpy(), atol=1e-5)


def test_log_det_matches_autodiff_jacobian():
    rng = np.random.default_rng(2)
    s = SplineSettings(num_bins=16, tail_bound=1.5)
    p = _params(rng, 300, 2, 16, 1.5, tf.float64)
    knots = spline_knots(p, s)
    for fn in (rq_spline_forward, rq_spline_inverse):
        x = tf.constant(rng.uniform(-2, 2, size=(300, 2)))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, ld = fn(x, knots)
        # Elementwise map: the Jacobian is diagonal, so the gradient of sum(y) is its diagonal.
        np.testing.assert_allclose(np.log(tape.gradient(y, x).numpy()), ld.numpy(), atol=1e-9)
    # And against central finite differences (independent of TF autodiff).
    x = rng.uniform(-1.4, 1.4, size=(300, 2))
    eps = 1e-6
    fd = (rq_spline_forward(tf.constant(x + eps), knots)[0]
          - rq_spline_forward(tf.constant(x - eps), knots)[0]).numpy() / (2 * eps)
    np.testing.assert_allclose(np.log(fd), rq_spline_forward(tf.constant(x), knots)[1].numpy(),
                               atol=1e-5)


def test_identity_outside_bound_and_no_nan_gradients():
    rng = np.random.default_rng(3)
    s = SplineSettings(num_bins=32)
    p = tf.Variable(_params(rng, 1, 7, 32, 2.0, tf.float32))
    x = tf.constant([[-1e30, 1e30, -1e6, 1e6, 1.0, -1.0, 1.0 + 1e-6]], tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, ld = apply_rq_spline(x, p, s)
        xi, ldi = apply_rq_spline(x, p, s, inverse=True)
        total = tf.reduce_sum(y) + tf.reduce_sum(ld) + tf.reduce_sum(xi) + tf.reduce_sum(ldi)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(xi.numpy(), x.numpy())
    assert np.all(ld.numpy() == 0) and np.all(ldi.numpy() == 0)
    gp, gx = tape.gradient(total, p), tape.gradient(total, x)
    assert np.all(np.isfinite(gp.numpy())) and np.all(np.isfinite(gx.numpy()))
    np.testing.assert_allclose(gx.numpy(), 2.0)


def test_identity_init_and_settings_validation():
    k = 8
    s = SplineSettings(num_bins=k)
    p = np.zeros((1, 1, num_spline_params(k)), np.float64)
    p[..., 2 * k:] = identity_slope_logit(s.min_derivative)
    x = tf.constant(np.linspace(-0.99, 0.99, 50)[:, None])
    y, ld = apply_rq_spline(x, tf.constant(p), s)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-12)
    np.testing.assert_allclose(ld.numpy(), 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        SplineSettings(num_bins=2000)
    with pytest.raises(ValueError):
        spline_knots(tf.zeros([1, 5]), s)


def test_float32_log_det_close_to_float64():
    # float32 against float64 on the same parameters (16 and 128 bins): the worst
    # element of a few thousand is off by a few 1e-3 nats (measured 3e-3), the typical by 1e-6.
    rng = np.random.default_rng(4)
    for k in (16, 128):
        s = SplineSettings(num_bins=k, tail_bound=3.0)
        p = rng.normal(size=(2000, 4, num_spline_params(k)))
        x = rng.uniform(-3.2, 3.2, size=(2000, 4))
        for inverse in (False, True):
            y32, ld32 = apply_rq_spline(tf.constant(x, tf.float32), tf.constant(p, tf.float32),
                                        s, inverse=inverse)
            y64, ld64 = apply_rq_spline(tf.constant(x), tf.constant(p), s, inverse=inverse)
            ld_err = np.abs(ld32.numpy() - ld64.numpy())
            assert ld_err.max() < 1e-2 and np.median(ld_err) < 1e-5
            np.testing.assert_allclose(y32.numpy(), y64.numpy(), atol=2e-3)
