"""Monotonic rational-quadratic splines (Durkan et al. 2019) with linear (identity) tails.

The spline maps [-B, B] onto itself through `num_bins` (K) bins; outside it is the identity, so
the boundary knot slopes are fixed to 1. A network predicts 3K - 1 unconstrained numbers per
transformed feature, laid out on the last axis as

    [K unnormalised widths | K unnormalised heights | K - 1 unnormalised interior slopes]

and `spline_knots` turns them into knots with minimum bin width, height and slope (the nflows
recipe: softmax + floor for widths/heights, floor + softplus for slopes). `rq_spline_forward`
and `rq_spline_inverse` apply the spline elementwise and return the elementwise log|dy/dx| (or
log|dx/dy|) alongside, computed in the same pass.

Inputs far outside [-B, B] pass through unchanged with log-det 0 and finite (zero) gradients:
the spline branch is always evaluated at the input clipped to [-B, B], so no inf/NaN can leak
through `tf.where` into the gradients.

Public API (stable): `SplineSettings`, `num_spline_params`, `SplineKnots`, `spline_knots`,
`rq_spline_forward`, `rq_spline_inverse`, `apply_rq_spline`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


@dataclass(frozen=True)
class SplineSettings:
    """Spline hyper-parameters: bins K, tail bound B (the spline acts on [-B, B]) and floors."""

    num_bins: int = 8
    tail_bound: float = 1.0
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT
    min_derivative: float = DEFAULT_MIN_DERIVATIVE

    def __post_init__(self) -> None:
        if int(self.num_bins) < 1:
            raise ValueError(f"num_bins must be >= 1, got {self.num_bins}")
        if not self.tail_bound > 0:
            raise ValueError(f"tail_bound must be > 0, got {self.tail_bound}")
        if self.min_bin_width * self.num_bins >= 1.0 or self.min_bin_height * self.num_bins >= 1.0:
            raise ValueError("min_bin_width/min_bin_height times num_bins must be < 1")
        if not 0 < self.min_derivative < 1:
            raise ValueError(f"min_derivative must be in (0, 1), got {self.min_derivative}")

    @property
    def params_per_feature(self) -> int:
        return num_spline_params(self.num_bins)

    def to_dict(self) -> dict:
        return asdict(self)


def num_spline_params(num_bins: int) -> int:
    """Unconstrained parameters per transformed feature: K widths, K heights, K - 1 slopes."""
    return 3 * int(num_bins) - 1


class SplineKnots(NamedTuple):
    """The K bins of a batch of splines; every field shaped [..., K] (leading axes broadcast
    with the inputs). Bin k spans [x[k], x[k] + width[k]] -> [y[k], y[k] + height[k]], with
    slopes d_left[k], d_right[k] at its two knots (1 at -B and B, for the identity tails).

    Widths and heights are kept per bin rather than as differences of accumulated knots: a
    difference of two knots near B loses the bin's relative precision in float32.
    """

    x: tf.Tensor
    width: tf.Tensor
    y: tf.Tensor
    height: tf.Tensor
    d_left: tf.Tensor
    d_right: tf.Tensor


def _bins(unnormalized: tf.Tensor, min_size: float, tail_bound: float
          ) -> tuple[tf.Tensor, tf.Tensor]:
    """Softmax bin sizes with a floor -> (left edges [..., K], sizes [..., K]) on [-B, B].

    The left edges are an exclusive cumulative sum written as one matmul with a strictly
    upper-triangular matrix of ones: a dense kernel on the CPU (tf.cumsum over a short last
    axis is several times slower) and under XLA (which lowers cumsum to an O(K^2) window
    reduction). Its first column is zero, so the first edge is exactly -B.
    """
    num_bins = unnormalized.shape[-1]
    sizes = tf.nn.softmax(unnormalized, axis=-1)
    sizes = (2.0 * tail_bound) * (min_size + (1.0 - min_size * num_bins) * sizes)
    strictly_upper = tf.constant(np.triu(np.ones((num_bins, num_bins)), 1), sizes.dtype)
    left = tf.tensordot(sizes, strictly_upper, axes=1) - tail_bound
    return left, sizes


def spline_knots(unnormalized: tf.Tensor, settings: SplineSettings) -> SplineKnots:
    """Network outputs [..., 3K - 1] -> bins [..., K] (see the module docstring layout)."""
    k = int(settings.num_bins)
    if unnormalized.shape[-1] != num_spline_params(k):
        raise ValueError(f"expected last axis {num_spline_params(k)} (3K - 1 for K = {k}), "
                         f"got {unnormalized.shape[-1]}")
    # tf.split, not slicing: the gradient of a strided slice (StridedSliceGrad) is the
    # slowest op of a CPU training step, that of a split a plain concat.
    w, h, d = tf.split(unnormalized, [k, k, k - 1], axis=-1)
    x, width = _bins(w, settings.min_bin_width, settings.tail_bound)
    y, height = _bins(h, settings.min_bin_height, settings.tail_bound)
    inner_d = settings.min_derivative + tf.nn.softplus(d)
    lead = [[0, 0]] * (len(inner_d.shape) - 1)
    d_left = tf.pad(inner_d, lead + [[1, 0]], constant_values=1.0)
    d_right = tf.pad(inner_d, lead + [[0, 1]], constant_values=1.0)
    return SplineKnots(x, width, y, height, d_left, d_right)


class _Bin(NamedTuple):
    x_k: tf.Tensor
    w_k: tf.Tensor
    y_k: tf.Tensor
    h_k: tf.Tensor
    d_k: tf.Tensor
    d_kp1: tf.Tensor


def _clip_and_locate(v: tf.Tensor, knots: SplineKnots, tail_bound: tf.Tensor,
                     on_y: bool) -> tuple[tf.Tensor, tf.Tensor, _Bin]:
    """Clip `v` [...] into [-B, B] (so the spline branch stays finite for any input) and pick
    the parameters of its bin among the x edges (forward) or y edges (inverse).

    The bin is a one-hot mask (left edges at or below v, minus the same shifted by one) and
    each parameter a masked sum: O(K) like nflows' search, branch-free, and its gradient is
    dense (a gather's gradient is a scatter, slow on the CPU).
    """
    edges = knots.y if on_y else knots.x
    clipped = tf.clip_by_value(v, -tail_bound, tail_bound)
    at_or_above = tf.cast(clipped[..., None] >= edges, v.dtype)  # [..., K], first entry 1
    lead = [[0, 0]] * (len(at_or_above.shape) - 1)
    one_hot = at_or_above - tf.pad(at_or_above[..., 1:], lead + [[0, 1]])

    def pick(t: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(one_hot * t, axis=-1)

    b = _Bin(*(pick(t) for t in knots))
    return (v > -tail_bound) & (v < tail_bound), clipped, b


def _tail_bound(knots: SplineKnots) -> tf.Tensor:
    """B, read off the bins: -x[0] (exact: the first left edge is -B)."""
    return -knots.x[..., 0]


def rq_spline_forward(x: tf.Tensor, knots: SplineKnots) -> tuple[tf.Tensor, tf.Tensor]:
    """y = s(x) elementwise and log|ds/dx|; x [...], bins [..., K]. Identity outside."""
    inside, xc, b = _clip_and_locate(x, knots, _tail_bound(knots), on_y=False)
    s = b.h_k / b.w_k
    t = (xc - b.x_k) / b.w_k
    t1 = t * (1.0 - t)
    denom = s + (b.d_kp1 + b.d_k - 2.0 * s) * t1
    y = b.y_k + b.h_k * (s * t * t + b.d_k * t1) / denom
    deriv_num = s * s * (b.d_kp1 * t * t + 2.0 * s * t1 + b.d_k * (1.0 - t) ** 2)
    logdet = tf.math.log(deriv_num) - 2.0 * tf.math.log(denom)
    return tf.where(inside, y, x), tf.where(inside, logdet, tf.zeros_like(logdet))


def rq_spline_inverse(y: tf.Tensor, knots: SplineKnots) -> tuple[tf.Tensor, tf.Tensor]:
    """x = s^-1(y) elementwise and log|dx/dy| (= -log|ds/dx| at x). Identity outside [-B, B]."""
    inside, yc, b = _clip_and_locate(y, knots, _tail_bound(knots), on_y=True)
    s = b.h_k / b.w_k
    dy = yc - b.y_k
    slope_sum = b.d_kp1 + b.d_k - 2.0 * s
    a = b.h_k * (s - b.d_k) + dy * slope_sum
    bq = b.h_k * b.d_k - dy * slope_sum
    c = -s * dy
    disc = bq * bq - 4.0 * a * c
    # Rounding can push the discriminant a hair below 0; keep sqrt and its gradient finite.
    pos = disc > 0
    root = tf.where(pos, tf.sqrt(tf.where(pos, disc, tf.ones_like(disc))), tf.zeros_like(disc))
    # Citardauq form 2c / (-b - sqrt(disc)): stable when 4ac is small (Durkan et al. eq. 29).
    t = (2.0 * c) / (-bq - root)
    x = b.x_k + t * b.w_k
    t1 = t * (1.0 - t)
    denom = s + slope_sum * t1
    deriv_num = s * s * (b.d_kp1 * t * t + 2.0 * s * t1 + b.d_k * (1.0 - t) ** 2)
    logdet = 2.0 * tf.math.log(denom) - tf.math.log(deriv_num)
    return tf.where(inside, x, y), tf.where(inside, logdet, tf.zeros_like(logdet))


def apply_rq_spline(inputs: tf.Tensor, unnormalized: tf.Tensor, settings: SplineSettings,
                    inverse: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """One-call form: inputs [...], network outputs [..., 3K - 1] -> (outputs [...],
    elementwise log|d outputs / d inputs| [...])."""
    knots = spline_knots(unnormalized, settings)
    if inverse:
        return rq_spline_inverse(inputs, knots)
    return rq_spline_forward(inputs, knots)


def identity_slope_logit(min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> float:
    """The unconstrained slope value whose constrained slope is exactly 1 (identity init)."""
    return math.log(math.expm1(1.0 - min_derivative))
