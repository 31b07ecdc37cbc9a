"""The linear part of a FlashSim flow step: a fixed random permutation and an LU-decomposed
invertible linear map initialised at the identity (nflows' RandomPermutation + LULinear).

Direction convention (shared with `spline_coupling`): `to_noise` is the data -> latent direction
used by log_prob (a gather, or a matmul), `to_data` is latent -> data used for sampling (a
gather, or a matmul with the inverse from two D x D triangular solves). Both return
(outputs [N, D], log|det J| [N]).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


class FixedPermutation(tf.Module):
    """x -> x[:, perm] with a random permutation fixed at construction (stored, not trained)."""

    def __init__(self, features: int, seed: int, name: str | None = None):
        super().__init__(name=name)
        perm = np.random.default_rng(seed).permutation(features)
        self.perm = tf.Variable(perm.astype(np.int32), trainable=False, name="perm")
        self.inverse_perm = tf.Variable(np.argsort(perm).astype(np.int32), trainable=False,
                                        name="inverse_perm")

    def to_noise(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(x, self.perm, axis=1), tf.zeros(tf.shape(x)[:1], x.dtype)

    def to_data(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(z, self.inverse_perm, axis=1), tf.zeros(tf.shape(z)[:1], z.dtype)


class LULinear(tf.Module):
    """z = x W^T + b with W = L U; L unit lower-triangular, U upper-triangular with diagonal
    softplus(u) + eps > 0, so log|det W| = sum log diag(U). Starts at W = I, b = 0.

    Parameters: D(D-1)/2 lower + D(D-1)/2 upper + D diagonal + D bias = D^2 + D.
    """

    def __init__(self, features: int, eps: float = 1e-3, name: str | None = None,
                 dtype: tf.DType = tf.float32):
        super().__init__(name=name)
        self.features = int(features)
        self.eps = float(eps)
        lower_idx = np.stack(np.tril_indices(features, -1), axis=1)
        upper_idx = np.stack(np.triu_indices(features, 1), axis=1)
        self._lower_idx = tf.constant(lower_idx, tf.int64)
        self._upper_idx = tf.constant(upper_idx, tf.int64)
        n_off = len(lower_idx)
        self.lower_entries = tf.Variable(tf.zeros([n_off], dtype), name="lower_entries")
        self.upper_entries = tf.Variable(tf.zeros([n_off], dtype), name="upper_entries")
        # softplus(u) + eps = 1 at initialisation: an exact identity map.
        self.unconstrained_diag = tf.Variable(
            tf.fill([features], tf.constant(math.log(math.expm1(1.0 - self.eps)), dtype)),
            name="unconstrained_diag")
        self.bias = tf.Variable(tf.zeros([features], dtype), name="bias")

    def _factors(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        d = self.features
        diag = tf.nn.softplus(self.unconstrained_diag) + self.eps
        lower = tf.scatter_nd(self._lower_idx, self.lower_entries, [d, d]) + tf.eye(d,
                                                                                  dtype=diag.dtype)
        upper = tf.scatter_nd(self._upper_idx, self.upper_entries, [d, d]) + tf.linalg.diag(diag)
        return lower, upper, diag

    def weight_t(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(W^T [D, D], bias [D], log|det W|): z = x @ W^T + bias."""
        lower, upper, diag = self._factors()
        return (tf.transpose(tf.matmul(lower, upper)), tf.convert_to_tensor(self.bias),
                tf.reduce_sum(tf.math.log(diag)))

    def inverse_t(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """((W^-1)^T [D, D], bias [D], log|det W|): x = (z - bias) @ (W^-1)^T."""
        lower, upper, diag = self._factors()
        eye = tf.eye(self.features, dtype=diag.dtype)
        inverse = tf.linalg.triangular_solve(
            upper, tf.linalg.triangular_solve(lower, eye, lower=True), lower=False)
        return (tf.transpose(inverse), tf.convert_to_tensor(self.bias),
                tf.reduce_sum(tf.math.log(diag)))

    def to_noise(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        lower, upper, diag = self._factors()
        weight = tf.matmul(lower, upper)
        z = tf.matmul(x, weight, transpose_b=True) + self.bias
        return z, tf.fill(tf.shape(x)[:1], tf.reduce_sum(tf.math.log(diag)))

    def to_data(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        lower, upper, diag = self._factors()
        # W^-1 = U^-1 L^-1 by two D x D triangular solves, then one [N, D] x [D, D] matmul:
        # half the time of solving with N right-hand sides (10^4 rows, D = 17).
        eye = tf.eye(self.features, dtype=z.dtype)
        inverse = tf.linalg.triangular_solve(
            upper, tf.linalg.triangular_solve(lower, eye, lower=True), lower=False)
        x = tf.matmul(z - self.bias, inverse, transpose_b=True)
        return x, tf.fill(tf.shape(z)[:1], -tf.reduce_sum(tf.math.log(diag)))
