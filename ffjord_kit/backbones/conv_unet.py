"""Convolutional U-Net backbone for image-shaped data ("conv_unet").

The state x (B, H*W*C) is reshaped to images (B, H, W, C); the context [t, condition] is tiled
as extra channels at every level's input. Level 0 is a stride-1 convolution at full resolution;
each further level a stride-`stride` convolution down. The way up uses transposed convolutions
(cropped to the skip's size, so odd sizes such as 7 -> 4 -> 7 work) merged with the encoder
output of the same level as (h + skip) / sqrt(2); a linear convolution gives dx/dt.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from ..networks import register_backbone
from .common import NormalisedBlock, TimeConditionContext, glorot_init, merge_skip


def tile_context(context: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Context (B, E) broadcast to the spatial grid of `like` (B, H, W, *): (B, H, W, E)."""
    shape = tf.shape(like)
    return tf.broadcast_to(context[:, None, None, :],
                           tf.stack([shape[0], shape[1], shape[2], tf.shape(context)[1]]))


class ConvUNetCore(tf.Module):
    """f(images, context) -> (B, H, W, out_channels) with a context tiled as channels."""

    def __init__(self, image_shape: Sequence[int], out_channels: int, context_dim: int,
                 channels: Sequence[int] = (16, 32), kernel: int = 3, stride: int = 2,
                 activation: str = "tanh", dropout: float = 0.0, batch_norm: bool = False,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        self.image_shape = tuple(int(s) for s in image_shape)
        chans = [int(c) for c in channels]
        seeds = iter(range(seed * 97 + 1, seed * 97 + 97))

        def conv(cls, width: int, strides: int):
            return cls(width, kernel, strides=strides, padding="same",
                       kernel_initializer=glorot_init(next(seeds)))

        self.down = [NormalisedBlock(conv(tf_keras.layers.Conv2D, c, 1 if i == 0 else stride),
                                     activation, dropout, batch_norm)
                     for i, c in enumerate(chans)]
        self.up = [NormalisedBlock(conv(tf_keras.layers.Conv2DTranspose, chans[i], stride),
                                   activation, dropout, batch_norm)
                   for i in reversed(range(len(chans) - 1))]
        init = "zeros" if zero_init_output else glorot_init(next(seeds))
        self.output_layer = tf_keras.layers.Conv2D(out_channels, kernel, padding="same",
                                                   kernel_initializer=init)
        self(tf.zeros([1, *self.image_shape]), tf.zeros([1, context_dim]))

    def __call__(self, images: tf.Tensor, context: tf.Tensor,
                 training: bool = False) -> tf.Tensor:
        # The layers' compute dtype: bfloat16 under a mixed policy (the precision setting).
        dtype = self.output_layer.compute_dtype
        h, context, skips = tf.cast(images, dtype), tf.cast(context, dtype), []
        for blk in self.down:
            h = blk(tf.concat([h, tile_context(context, h)], axis=-1), training)
            skips.append(h)
        for blk, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = blk(tf.concat([h, tile_context(context, h)], axis=-1), training)
            h = merge_skip(h[:, : skip.shape[1], : skip.shape[2], :], skip)
        return self.output_layer(tf.concat([h, tile_context(context, h)], axis=-1))


@register_backbone("conv_unet")
class ConvUNet(tf.Module):
    """Convolutional U-Net right-hand side f(t, x, condition) -> (B, D), D = H * W * C.

    Args:
      dim: D; must equal prod(image_shape). image_shape: (H, W, C), e.g. (28, 28, 1).
      channels: channels per level, e.g. (16, 32): level 0 at full resolution, then one
        stride-`stride` level per further entry.
      kernel, stride: convolution kernel size and down/up-sampling stride.
      activation, dropout, batch_norm, zero_init_output: as in `DenseUNet`.
    """

    def __init__(self, dim: int, image_shape: Sequence[int] = (28, 28, 1),
                 channels: Sequence[int] = (16, 32), kernel: int = 3, stride: int = 2,
                 activation: str = "tanh", condition_dim: int = 0, dropout: float = 0.0,
                 batch_norm: bool = False, condition_embedding: int = 8,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or image_shape[0] * image_shape[1] * image_shape[2] != dim:
            raise ValueError(f"image_shape {image_shape} must be (H, W, C) with H*W*C = {dim}")
        self.dim, self.condition_dim, self.image_shape = int(dim), int(condition_dim), image_shape
        self.context = TimeConditionContext(condition_dim, condition_embedding, seed)
        self.core = ConvUNetCore(image_shape, image_shape[2], self.context.width, channels,
                                 kernel, stride, activation, dropout, batch_norm,
                                 zero_init_output, seed)

    def __call__(self, t, x, condition=None, training=False):
        images = tf.reshape(x, [-1, *self.image_shape])
        out = self.core(images, self.context(t, x, condition), training)
        return tf.reshape(out, [-1, self.dim])
