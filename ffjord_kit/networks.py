"""Right-hand-side networks f(t, x, condition) for continuous flows.

A backbone is a `tf.Module` called as `net(t, x, condition=None, training=False) -> dx/dt` with
x of shape (B, D), t a scalar or one time per row (B,) (flow matching) and condition (B, C) or
None. A backbone may also provide
`value_and_jacobian(t, x, condition)` returning (dx/dt (B, D), d(dx/dt)/dx (B, D, D)); the exact
trace estimator then uses it instead of D backward passes.

Backbones are registered by name so configs can select them (`BACKBONES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

BACKBONES: dict[str, type] = {}


def register_backbone(name: str) -> Callable[[type], type]:
    """Class decorator: make a backbone constructible by name from a config."""

    def wrap(cls: type) -> type:
        BACKBONES[name] = cls
        return cls

    return wrap


# Activation and its derivative written in terms of (pre-activation a, activation value h),
# so the forward-mode Jacobian costs no extra transcendental calls for tanh.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (tf.tanh, lambda a, h: 1.0 - h * h),
    "softplus": (tf.nn.softplus, lambda a, h: tf.sigmoid(a)),
    "swish": (tf.nn.silu, lambda a, h: tf.sigmoid(a) * (1.0 + a * (1.0 - tf.sigmoid(a)))),
    "elu": (tf.nn.elu, lambda a, h: tf.where(a > 0, tf.ones_like(a), h + 1.0)),
}


def activation(name: str) -> tuple[Callable, Callable]:
    """(function, derivative) for an activation name; ValueError naming the choices."""
    try:
        return ACTIVATIONS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{sorted(ACTIVATIONS)}") from None


def time_column(t, x: tf.Tensor) -> tf.Tensor:
    """t (a scalar, or one time per row of shape (B,)) as a column (B, 1) in x's dtype."""
    t = tf.reshape(tf.cast(t, x.dtype), [-1, 1])
    return t * tf.ones([tf.shape(x)[0], 1], x.dtype)


def glorot(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


class ConditionEmbedding(tf.Module):
    """A small dense network mapping a condition of dimension > 1 to `dim` features (tanh)."""

    def __init__(self, condition_dim: int, dim: int, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        rng = np.random.default_rng(seed + 7919)
        self.w = tf.Variable(glorot((condition_dim, dim), rng), name="w")
        self.b = tf.Variable(tf.zeros([dim]), name="b")

    def __call__(self, condition: tf.Tensor) -> tf.Tensor:
        return tf.tanh(condition @ self.w + self.b)


@register_backbone("mlp")
class ODEMLP(tf.Module):
    """Time-dependent MLP: input [t, x, embed(condition)], `hidden` tanh-like layers, linear out.

    Args:
      dim: D, the state dimension.
      hidden: widths of the hidden layers, e.g. (64, 64).
      activation: 'tanh', 'softplus', 'swish' or 'elu' (smooth, so the ODE is well posed).
      condition_dim: C, 0 for an unconditional flow. A scalar condition enters directly; C > 1
        passes through a `ConditionEmbedding` of width `condition_embedding` first.
      zero_init_output: start as the identity flow (f = 0), which keeps the first steps cheap.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 condition_dim: int = 0, condition_embedding: int = 8,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        self.dim, self.condition_dim = int(dim), int(condition_dim)
        self._act, self._dact = globals()["activation"](activation)
        rng = np.random.default_rng(seed)
        self.embedding = (ConditionEmbedding(condition_dim, condition_embedding, seed)
                          if condition_dim > 1 else None)
        extra = 1 + (condition_embedding if condition_dim > 1 else condition_dim)
        sizes = [dim + extra, *hidden, dim]
        self.weights_, self.biases = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            w = np.zeros((n_in, n_out), np.float32) if (last and zero_init_output) else \
                glorot((n_in, n_out), rng)
            self.weights_.append(tf.Variable(w, name=f"w{i}"))
            self.biases.append(tf.Variable(tf.zeros([n_out]), name=f"b{i}"))

    def _context(self, t: tf.Tensor, x: tf.Tensor, condition: tf.Tensor | None) -> tf.Tensor:
        """The non-state inputs [t, embed(c)] for each row, shape (B, 1 + E)."""
        tt = time_column(t, x)
        if condition is None or self.condition_dim == 0:
            return tt
        c = self.embedding(condition) if self.embedding is not None else condition
        return tf.concat([tt, tf.cast(c, x.dtype)], axis=1)

    def __call__(self, t, x, condition=None, training=False):
        h = tf.concat([x, self._context(t, x, condition)], axis=1)
        for w, b in zip(self.weights_[:-1], self.biases[:-1], strict=True):
            h = self._act(h @ w + b)
        return h @ self.weights_[-1] + self.biases[-1]

    def value_and_jacobian(self, t, x, condition=None):
        """f and its exact Jacobian df/dx by forward-mode propagation of the D unit tangents.

        Costs about (1 + D) forward passes of matrix products and no backward pass, which makes
        the exact trace cheaper than a single Hutchinson probe's backward pass in 2-D.
        """
        h = tf.concat([x, self._context(t, x, condition)], axis=1)
        w0 = self.weights_[0]
        a = h @ w0 + self.biases[0]
        h = self._act(a)
        # tangent J_h = dh/dx: (B, H, D); the first layer only sees x through w0[:D].
        jac = self._dact(a, h)[:, :, None] * tf.transpose(w0[: self.dim])[None]
        for w, b in zip(self.weights_[1:-1], self.biases[1:-1], strict=True):
            a = h @ w + b
            h = self._act(a)
            jac = self._dact(a, h)[:, :, None] * tf.einsum("bhd,hk->bkd", jac, w)
        w_out = self.weights_[-1]
        return h @ w_out + self.biases[-1], tf.einsum("bhd,hk->bkd", jac, w_out)
