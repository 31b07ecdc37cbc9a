"""The tutorial's dense encoder-decoder backbone ("dense_unet").

Each layer sees concat([context, h]) with the context [t, condition] fed to every layer; layers
are Dense -> BatchNorm -> Dropout -> activation (the last two optional); decoder layers mirror the
encoder and merge the encoder output of the same width as (h + skip) / sqrt(2); a linear layer
maps to dx/dt. With LAYER_SIZE [32, 16, 8, 4]: encoder 32, 16, 8, 4; decoder 8, 16, 32 (skips
from the encoder's 8, 16, 32); output D.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from ..networks import activation as activation_pair
from ..networks import register_backbone
from .common import NormalisedBlock, TimeConditionContext, glorot_init, merge_skip


class DenseUNetCore(tf.Module):
    """f(x, context) -> (B, out_dim): dense encoder-decoder with skips; x (B, in_dim),
    context (B, context_dim) entering every layer."""

    def __init__(self, in_dim: int, out_dim: int, context_dim: int, layer_sizes: Sequence[int],
                 activation: str = "tanh", dropout: float = 0.0, batch_norm: bool = False,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        sizes = [int(s) for s in layer_sizes]
        seeds = iter(range(seed * 97 + 1, seed * 97 + 97))

        def block(width: int) -> NormalisedBlock:
            return NormalisedBlock(tf_keras.layers.Dense(width,
                                                         kernel_initializer=glorot_init(
                                                             next(seeds))),
                                   activation, dropout, batch_norm)

        self.encoder = [block(w) for w in sizes]
        self.decoder = [block(w) for w in reversed(sizes[:-1])]
        init = "zeros" if zero_init_output else glorot_init(next(seeds))
        self.output_layer = tf_keras.layers.Dense(out_dim, kernel_initializer=init)
        # Build every variable now, outside any tf.function.
        self(tf.zeros([1, in_dim]), tf.zeros([1, context_dim]))

    def __call__(self, x: tf.Tensor, context: tf.Tensor, training: bool = False) -> tf.Tensor:
        # The layers' compute dtype: bfloat16 under a mixed policy (the precision setting).
        dtype = self.output_layer.compute_dtype
        h, context, skips = tf.cast(x, dtype), tf.cast(context, dtype), []
        for blk in self.encoder:
            h = blk(tf.concat([context, h], axis=1), training)
            skips.append(h)
        for blk, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            h = merge_skip(blk(tf.concat([context, h], axis=1), training), skip)
        return self.output_layer(tf.concat([context, h], axis=1))


@register_backbone("dense_unet")
class DenseUNet(tf.Module):
    """Dense encoder-decoder right-hand side f(t, x, condition) -> (B, D).

    Args:
      dim: D. condition_dim: C (0: unconditional).
      layer_sizes: encoder widths, e.g. (32, 16, 8, 4); the decoder mirrors them.
      activation: 'tanh', 'softplus', 'swish' or 'elu'.
      dropout: rate after each normalised layer (0: off). batch_norm: BatchNorm on/off.
      zero_init_output: start as the identity flow (f = 0).
    """

    def __init__(self, dim: int, layer_sizes: Sequence[int] = (32, 16, 8, 4),
                 activation: str = "tanh", condition_dim: int = 0, dropout: float = 0.0,
                 batch_norm: bool = False, condition_embedding: int = 8,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        if len(layer_sizes) < 1:
            raise ValueError("layer_sizes needs at least one width")
        self.dim, self.condition_dim = int(dim), int(condition_dim)
        self.context = TimeConditionContext(condition_dim, condition_embedding, seed)
        self.core = DenseUNetCore(dim, dim, self.context.width, layer_sizes, activation,
                                  dropout, batch_norm, zero_init_output, seed)
        self._dact = activation_pair(activation)[1]
        if not batch_norm and dropout == 0:
            # Deterministic row-wise field: the exact trace can use forward-mode Jacobians.
            self.value_and_jacobian = self._value_and_jacobian

    def __call__(self, t, x, condition=None, training=False):
        return self.core(x, self.context(t, x, condition), training)

    def _value_and_jacobian(self, t, x, condition=None):
        """f (B, D) and df/dx (B, D, D) by forward-mode propagation of the D unit tangents
        (no backward pass); only for the deterministic variant (no BatchNorm, no dropout)."""
        ctx = self.context(t, x, condition)
        n_ctx = ctx.shape[1]

        def dense(layer, h, jac):
            kernel = layer.kernel
            a = tf.concat([ctx, h], axis=1) @ kernel + layer.bias
            return a, tf.einsum("bhd,hk->bkd", jac, kernel[n_ctx:])

        def block(blk, h, jac):
            a, jac = dense(blk.layer, h, jac)
            h = blk._act(a)
            return h, self._dact(a, h)[:, :, None] * jac

        eye = tf.eye(self.dim, batch_shape=[tf.shape(x)[0]], dtype=x.dtype)
        h, jac, skips = x, eye, []
        for blk in self.core.encoder:
            h, jac = block(blk, h, jac)
            skips.append((h, jac))
        for blk, (skip, skip_jac) in zip(self.core.decoder, reversed(skips[:-1]), strict=True):
            h, jac = block(blk, h, jac)
            h, jac = merge_skip(h, skip), merge_skip(jac, skip_jac)
        return dense(self.core.output_layer, h, jac)

