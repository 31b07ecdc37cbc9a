"""Pieces shared by the U-Net style backbones: the [t, condition] context, a normalised layer
block (layer -> BatchNorm -> Dropout -> activation) and the skip merge (h + skip) / sqrt(2)."""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras

from ..networks import ConditionEmbedding, activation, time_column

SQRT2 = math.sqrt(2.0)


def merge_skip(h: tf.Tensor, skip: tf.Tensor) -> tf.Tensor:
    """(h + skip) / sqrt(2): keeps the variance of two unit-variance inputs at one."""
    return (h + skip) / SQRT2


def glorot_init(seed: int) -> tf_keras.initializers.Initializer:
    return tf_keras.initializers.GlorotUniform(seed=seed)


class TimeConditionContext(tf.Module):
    """The context vector [t, condition] of each row, shape (B, 1 + E).

    A scalar condition enters as is; a condition of dimension C > 1 goes through a small
    `ConditionEmbedding` of width `embedding` (E), as in `networks.ODEMLP`.
    """

    def __init__(self, condition_dim: int, embedding: int = 8, seed: int = 0,
                 name: str | None = None):
        super().__init__(name=name)
        self.condition_dim = int(condition_dim)
        self.embedding = (ConditionEmbedding(condition_dim, embedding, seed)
                          if condition_dim > 1 else None)
        self.width = 1 + (embedding if condition_dim > 1 else condition_dim)

    def __call__(self, t, x: tf.Tensor, condition: tf.Tensor | None) -> tf.Tensor:
        tt = time_column(t, x)
        if condition is None or self.condition_dim == 0:
            return tt
        c = self.embedding(condition) if self.embedding is not None else condition
        return tf.concat([tt, tf.cast(c, x.dtype)], axis=1)


class NormalisedBlock(tf.Module):
    """layer -> BatchNorm (optional) -> Dropout (optional, rate > 0) -> activation.

    `layer` is a Keras layer (Dense, Conv2D, Conv2DTranspose). BatchNorm uses batch statistics
    (and updates its moving averages) when called with training=True, the moving averages
    otherwise; with `batch_norm=False` and `dropout=0` the block is a plain deterministic layer.
    """

    def __init__(self, layer, act: str, dropout: float = 0.0, batch_norm: bool = False,
                 name: str | None = None):
        super().__init__(name=name)
        self.layer = layer
        self.norm = tf_keras.layers.BatchNormalization() if batch_norm else None
        self.dropout = tf_keras.layers.Dropout(dropout) if dropout > 0 else None
        self._act = activation(act)[0]

    def __call__(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        h = self.layer(h)
        if self.norm is not None:
            h = self.norm(h, training=training)
        if self.dropout is not None:
            h = self.dropout(h, training=training)
        return self._act(h)
