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
    """Knots of a batch of splines; all shaped [..., K + 1] (leading axes broadcast with x).

    x: knot positions (x[..., 0] = -B, x[..., K] = B); y: knot values (same end points);
    d: slopes at the knots (d[..., 0] = d[..., K] = 1 for the identity tails).
    """

    x: tf.Tensor
    y: tf.Tensor
    d: tf.Tensor


def _knot_positions(unnormalized: tf.Tensor, min_size: float, tail_bound: float) -> tf.Tensor:
    """Softmax bin sizes with a floor, accumulated into K + 1 knots spanning [-B, B] exactly."""
    num_bins = unnormalized.shape[-1]
    sizes = tf.nn.softmax(unnormalized, axis=-1)
    sizes = min_size + (1.0 - min_size * num_bins) * sizes
    cum = tf.math.cumsum(sizes, axis=-1)
    inner = 2.0 * tail_bound * cum[..., :-1] - tail_bound
    lo = tf.fill(tf.shape(cum[..., :1]), tf.constant(-tail_bound, unnormalized.dtype))
    # Pin both end points: the cumsum's last entry is 1 only up to rounding.
    return tf.concat([lo, inner, -lo], axis=-1)


def spline_knots(unnormalized: tf.Tensor, settings: SplineSettings) -> SplineKnots:
    """Network outputs [..., 3K - 1] -> knots [..., K + 1] (see the module docstring layout)."""
    k = int(settings.num_bins)
    if unnormalized.shape[-1] != num_spline_params(k):
        raise ValueError(f"expected last axis {num_spline_params(k)} (3K - 1 for K = {k}), "
                         f"got {unnormalized.shape[-1]}")
    w, h, d = unnormalized[..., :k], unnormalized[..., k:2 * k], unnormalized[..., 2 * k:]
    kx = _knot_positions(w, settings.min_bin_width, settings.tail_bound)
    ky = _knot_positions(h, settings.min_bin_height, settings.tail_bound)
    inner_d = settings.min_derivative + tf.nn.softplus(d)
    one = tf.ones_like(kx[..., :1])
    kd = tf.concat([one, inner_d, one], axis=-1)
    return SplineKnots(kx, ky, kd)


class _Bin(NamedTuple):
    x_k: tf.Tensor
    w_k: tf.Tensor
    y_k: tf.Tensor
    h_k: tf.Tensor
    d_k: tf.Tensor
    d_kp1: tf.Tensor


def _locate(v: tf.Tensor, edges: tf.Tensor, knots: SplineKnots) -> _Bin:
    """Gather the bin of each clipped value `v` [...] among `edges` [..., K + 1]."""
    num_bins = edges.shape[-1] - 1
    # Count the interior knots at or below v: O(K) compares, but vectorised and branch-free
    # (the same choice as nflows); values at the right end point land in the last bin.
    idx = tf.reduce_sum(tf.cast(v[..., None] >= edges[..., 1:-1], tf.int32), axis=-1)
    idx = tf.minimum(idx, num_bins - 1)[..., None]
    rank = len(v.shape)

    def take(t: tf.Tensor, offset: int = 0) -> tf.Tensor:
        return tf.gather(t, idx + offset, axis=-1, batch_dims=rank)[..., 0]

    x_k, y_k, d_k = take(knots.x), take(knots.y), take(knots.d)
    return _Bin(x_k, take(knots.x, 1) - x_k, y_k, take(knots.y, 1) - y_k, d_k, take(knots.d, 1))


def _clip_and_locate(v: tf.Tensor, knots: SplineKnots,
                     on_y: bool) -> tuple[tf.Tensor, tf.Tensor, _Bin]:
    """Broadcast knots to `v`, clip `v` into [-B, B] (so the spline branch stays finite for
    any input) and find its bin among the x knots (forward) or y knots (inverse)."""
    shape = tf.concat([tf.shape(v), tf.shape(knots.x)[-1:]], axis=0)
    knots = SplineKnots(*(tf.broadcast_to(t, shape) for t in knots))
    edges = knots.y if on_y else knots.x
    lo, hi = edges[..., 0], edges[..., -1]
    clipped = tf.clip_by_value(v, lo, hi)
    return (v > lo) & (v < hi), clipped, _locate(clipped, edges, knots)


def rq_spline_forward(x: tf.Tensor, knots: SplineKnots) -> tuple[tf.Tensor, tf.Tensor]:
    """y = s(x) elementwise and log|ds/dx|; x [...], knots [..., K + 1]. Identity outside."""
    inside, xc, b = _clip_and_locate(x, knots, on_y=False)
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
    inside, yc, b = _clip_and_locate(y, knots, on_y=True)
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
