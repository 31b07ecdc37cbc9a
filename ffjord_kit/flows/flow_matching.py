"""Conditional flow matching for continuous flows: regress the vector field onto a straight path.

Maximum likelihood (FFJORD) solves the ODE and its trace in every training step. Flow matching
(Lipman et al. 2023) fixes a path between a base draw z ~ N(0, I) and a data point x,

    x_s = (1 - (1 - sigma_min) s) z + s x,     s in [0, 1],

whose velocity u = x - (1 - sigma_min) z is known, and regresses the field onto it:
E_{s, z, x} |v(s, x_s) - u|^2 / D. One network evaluation and one backward pass per step, no
solver. The learned field is still an ODE, so FFJORD's exact likelihood and sampler apply.

Time convention of `ContinuousFlow`: block 0 starts from the base, the last block ends on the
data. A stack of K blocks with integration time T each is one path split into K windows: block
i covers s in [i/K, (i+1)/K] at local time t = (K s - i) T, so its field f_i satisfies
v = K T f_i. Every step trains each block on its own stratum of the batch (rows i, i+K, ...).

Minibatch optimal transport (Tong et al. 2023, `coupling="ot"`): before the step, the base draws
are re-paired with the data points by an exact assignment (scipy's `linear_sum_assignment` on
squared distances) within sub-batches of `ot_block` rows, which keeps the cost at a few ms on a
CPU and straightens the learned paths (fewer solver steps when sampling). Conditional flows are
paired only among rows whose conditions are identical: pairing across conditions would transport
x|c onto base points meant for another condition and bias p(x|c). With continuous conditions
(no two alike) the coupling is therefore the independent one, and it says so.

    loss = flow_matching_loss(fields, x, z, condition, s, sigma_min=0.0, final_time=1.0)
    perm = ot_permutation(x, z, condition, block=64)      # z[perm] pairs with x
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

OBJECTIVES = ("max_likelihood", "flow_matching")
COUPLINGS = ("independent", "ot")


@dataclass(frozen=True)
class FlowMatching:
    """Flow-matching settings: sigma_min (the path's end width, in data units), the coupling of
    base draws to data points ('independent' or 'ot'), the OT sub-batch size, and `draws`: path
    samples (z, s) per data point and step. The regression's noise comes mostly from (z, s);
    more draws per point lower it at the cost of one larger matrix product, while the data
    pipeline and a maximum-likelihood fine-tune keep their batch size."""

    sigma_min: float = 0.0
    coupling: str = "independent"
    ot_block: int = 64
    draws: int = 1

    def __post_init__(self) -> None:
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if not 0.0 <= self.sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {self.sigma_min}")
        if self.ot_block < 2:
            raise ValueError(f"ot_block must be >= 2, got {self.ot_block}")
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")


def repeat_rows(x: tf.Tensor | None, draws: int) -> tf.Tensor | None:
    """x (N, ...) stacked `draws` times along the rows: (draws * N, ...)."""
    if x is None or draws == 1:
        return x
    return tf.concat([x] * draws, axis=0)


def straight_path(z: tf.Tensor, x: tf.Tensor, s: tf.Tensor,
                  sigma_min: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Point x_s (N, D) on the path at fractions s (N,) and its velocity dx_s/ds (N, D)."""
    s = s[:, None]
    return (1.0 - (1.0 - sigma_min) * s) * z + s * x, x - (1.0 - sigma_min) * z


def flow_matching_loss(fields: Sequence[Callable], x: tf.Tensor, z: tf.Tensor,
                       condition: tf.Tensor | None, u: tf.Tensor, sigma_min: float = 0.0,
                       final_time: float = 1.0) -> tf.Tensor:
    """Mean over rows of |K T f_i(t, x_s) - dx_s/ds|^2 / D for a stack of K fields.

    fields: the K block fields f_i(t, x, condition) in the flow's order (base side first).
    x, z: data points and their paired base draws, (N, D). u: uniforms (N,) placing each row
    inside its block's window. Rows i, i+K, i+2K, ... train block i.
    """
    k = len(fields)
    total = tf.constant(0.0, x.dtype)
    for i, field in enumerate(fields):
        xi, zi, ui = x[i::k], z[i::k], u[i::k]
        ci = None if condition is None else condition[i::k]
        s = (i + ui) / k
        xs, target = straight_path(zi, xi, s, sigma_min)
        v = k * final_time * field(ui * final_time, xs, ci)
        total += tf.reduce_sum(tf.square(v - target))
    n, d = tf.shape(x)[0], tf.shape(x)[1]
    return total / tf.cast(n * d, x.dtype)


def ot_permutation(x: np.ndarray, z: np.ndarray, condition: np.ndarray | None = None,
                   block: int = 64) -> np.ndarray:
    """Indices `perm` (N,) such that z[perm] is the minibatch-OT partner of x.

    Rows are paired only with rows of an identical condition (see the module docstring), in
    consecutive sub-batches of at most `block` rows of each condition group. The result is a
    permutation that maps every row to a row of its own condition group.
    """
    from scipy.optimize import linear_sum_assignment

    n = len(x)
    perm = np.arange(n)
    if condition is None or condition.size == 0:
        groups = [np.arange(n)]
    else:
        _, label = np.unique(np.asarray(condition).reshape(n, -1), axis=0, return_inverse=True)
        label = label.reshape(-1)
        groups = [np.flatnonzero(label == g) for g in np.unique(label)]
    for rows in groups:
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            if len(part) < 2:
                continue
            xp, zp = x[part], z[part]
            cost = (np.sum(xp * xp, 1)[:, None] + np.sum(zp * zp, 1)[None, :]
                    - 2.0 * xp @ zp.T)
            _, cols = linear_sum_assignment(cost)
            perm[part] = part[cols]
    return perm


def ot_pair(x: tf.Tensor, z: tf.Tensor, condition: tf.Tensor | None, block: int) -> tf.Tensor:
    """z re-ordered to its minibatch-OT partners of x (a host call; not inside XLA)."""
    args = [x, z] if condition is None else [x, z, condition]

    def host(xa, za, ca=None):
        return ot_permutation(xa, za, ca, block).astype(np.int64)

    perm = tf.numpy_function(host, args, tf.int64, stateful=False)
    perm.set_shape(x.shape[:1])
    return tf.gather(z, perm)
