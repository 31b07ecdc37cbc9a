"""The residual MLP that predicts spline parameters from (untransformed features, context).

Layout (nflows' ResidualNet, as used by FlashSim):
    h = Dense(hidden)(concat(inputs, context))
    repeat num_blocks:
        t = [BatchNorm] -> act -> Dense -> [BatchNorm] -> act -> [Dropout] -> Dense(init ~ 0)
        h = h + t * sigmoid(Dense(context))          # the context gate (a GLU)
    out = Dense(out_features)(h)
Dense kernels use PyTorch's default nn.Linear scale (uniform, limit 1/sqrt(fan_in)); batch norm
uses eps 1e-3 and momentum 0.9 (PyTorch momentum 0.1), like nflows.

`dtype` may be a Keras mixed policy ("mixed_bfloat16"): weights stay float32, the layers compute
in bfloat16 (batch norm statistics in float32, as Keras does), the output is bfloat16.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

_TORCH_LINEAR_INIT = dict(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def _dense(units: int, name: str, seed: int, near_zero: bool = False,
           dtype="float32") -> tf_keras.layers.Dense:
    """A Dense layer with seeded initialisers (so a config's seed fixes the initial weights)."""
    if near_zero:
        return tf_keras.layers.Dense(
            units, name=name, dtype=dtype,
            kernel_initializer=tf_keras.initializers.RandomUniform(-1e-3, 1e-3, seed=seed),
            bias_initializer=tf_keras.initializers.RandomUniform(-1e-3, 1e-3, seed=seed + 1))
    return tf_keras.layers.Dense(
        units, name=name, dtype=dtype,
        kernel_initializer=tf_keras.initializers.VarianceScaling(**_TORCH_LINEAR_INIT, seed=seed))


class ResidualBlock(tf_keras.layers.Layer):
    """One pre-activation residual block with a sigmoid context gate; [N, H] -> [N, H]."""

    def __init__(self, hidden: int, activation: str = "relu", batch_norm: bool = True,
                 dropout: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.act = tf_keras.activations.get(activation)
        dt = self.dtype_policy  # sublayers share the policy (a mixed one computes in bfloat16)
        # Keras fuses batch norm (one kernel forward and one backward instead of about fifteen
        # ops: a quarter faster on the CPU) only for NHWC input in float32/bfloat16, so `_norm`
        # views [N, H] as [N, 1, 1, H]. Fused, its moving variance is the unbiased one, as in
        # PyTorch/nflows; float64 flows (exactness checks) take the unfused path.
        self.norms = ([tf_keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9,
                                                          name=f"bn{i}", dtype=dt)
                       for i in range(2)] if batch_norm else [])
        self.dense0 = _dense(hidden, "dense0", seed, dtype=dt)
        self.dense1 = _dense(hidden, "dense1", seed + 1, near_zero=True, dtype=dt)
        self.gate = _dense(hidden, "context_gate", seed + 3, dtype=dt)
        self.dropout = tf_keras.layers.Dropout(dropout) if dropout > 0 else None

    def _norm(self, i: int, h: tf.Tensor, training: bool) -> tf.Tensor:
        width = h.shape[-1]
        return tf.reshape(self.norms[i](tf.reshape(h, [-1, 1, 1, width]), training=training),
                          [-1, width])

    def call(self, h: tf.Tensor, context: tf.Tensor, training: bool = False) -> tf.Tensor:
        t = self._norm(0, h, training) if self.norms else h
        t = self.dense0(self.act(t))
        if self.norms:
            t = self._norm(1, t, training)
        t = self.act(t)
        if self.dropout is not None:
            t = self.dropout(t, training=training)
        t = self.dense1(t)
        return h + t * tf.sigmoid(self.gate(context))


class ResidualConditioner(tf_keras.layers.Layer):
    """(inputs [N, I], context [N, C]) -> unconstrained parameters [N, out_features]."""

    def __init__(self, in_features: int, context_features: int, out_features: int,
                 hidden: int, num_blocks: int, activation: str = "relu",
                 batch_norm: bool = True, dropout: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.in_features, self.context_features = int(in_features), int(context_features)
        dt = self.dtype_policy  # sublayers share the policy (a mixed one computes in bfloat16)
        self.initial = _dense(hidden, "initial", seed, dtype=dt)
        self.blocks = [ResidualBlock(hidden, activation, batch_norm, dropout,
                                     seed=seed + 10 * (i + 1), name=f"block{i}", dtype=dt)
                       for i in range(num_blocks)]
        self.final = _dense(out_features, "final", seed + 10 * (num_blocks + 1), dtype=dt)
        # Build now so the variables exist before a checkpoint is restored into them.
        self(tf.zeros([1, in_features], self.dtype), tf.zeros([1, context_features], self.dtype))

    def call(self, inputs: tf.Tensor, context: tf.Tensor, training: bool = False) -> tf.Tensor:
        # Keras autocasts only the first argument to the compute dtype.
        context = tf.cast(context, inputs.dtype)
        h = self.initial(tf.concat([inputs, context], axis=1))
        for block in self.blocks:
            h = block(h, context, training=training)
        return self.final(h)
