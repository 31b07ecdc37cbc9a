"""A convolutional backbone for CaloGAN showers ("calorimeter_branches").

The tutorial asks how a convolutional model should treat three layer images of different
shapes (3x96, 12x12, 12x6). This backbone's answer: one small convolutional U-Net per layer
image, at that image's own resolution, plus a dense path for the three layer-energy variables.
The branches talk to each other through a shared global context: a dense layer of the whole
state and [t, condition], tiled as channels into every branch and fed to the dense path.

Input layout (the CaloFlow preprocessing, `data/calorimeter_preprocessing.py`):
x = [layer_0 (3*96 = 288), layer_1 (144), layer_2 (72), u0, u1, u2], D = 507.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from ..networks import activation as activation_fn
from ..networks import register_backbone
from .common import TimeConditionContext, glorot_init
from .conv_unet import ConvUNetCore
from .dense_unet import DenseUNetCore

# The CaloGAN layer images (rows, columns); the reader defines the same geometry.
LAYER_SHAPES: tuple[tuple[int, int], ...] = ((3, 96), (12, 12), (12, 6))
N_ENERGY_VARIABLES = 3
N_FEATURES = sum(h * w for h, w in LAYER_SHAPES) + N_ENERGY_VARIABLES  # 507


@register_backbone("calorimeter_branches")
class CalorimeterBranches(tf.Module):
    """Per-layer convolutional branches + dense energy path, f(t, x, condition) -> (B, 507).

    Args:
      dim: must be 507. condition_dim: C (1 for log10(E/10 GeV)).
      channels: channels per level of each branch U-Net, e.g. (8, 16).
      kernel, stride: convolution settings (a 3x96 image goes 3x96 -> 2x48 -> 3x96 cropped).
      global_width: width of the shared context computed from the whole state.
      energy_layer_sizes: widths of the dense encoder-decoder for (u0, u1, u2).
      activation, dropout, batch_norm, zero_init_output: as in `DenseUNet`.
    """

    def __init__(self, dim: int, channels: Sequence[int] = (8, 16), kernel: int = 3,
                 stride: int = 2, activation: str = "tanh", condition_dim: int = 0,
                 global_width: int = 32, energy_layer_sizes: Sequence[int] = (32, 16),
                 dropout: float = 0.0, batch_norm: bool = False, condition_embedding: int = 8,
                 zero_init_output: bool = False, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        if dim != N_FEATURES:
            raise ValueError(f"calorimeter_branches needs dim {N_FEATURES} (3x96 + 12x12 + "
                             f"12x6 voxels + 3 energy variables), got {dim}")
        self.dim, self.condition_dim = int(dim), int(condition_dim)
        self.context = TimeConditionContext(condition_dim, condition_embedding, seed)
        self.global_layer = tf_keras.layers.Dense(global_width,
                                                  kernel_initializer=glorot_init(seed * 97 + 90))
        self.global_layer.build((None, dim + self.context.width))
        self._act = activation_fn(activation)[0]
        ctx = self.context.width + global_width
        self.branches = [ConvUNetCore((h, w, 1), 1, ctx, channels, kernel, stride, activation,
                                      dropout, batch_norm, zero_init_output, seed * 10 + i)
                         for i, (h, w) in enumerate(LAYER_SHAPES)]
        self.energy_path = DenseUNetCore(N_ENERGY_VARIABLES, N_ENERGY_VARIABLES, ctx,
                                         energy_layer_sizes, activation, dropout, batch_norm,
                                         zero_init_output, seed * 10 + 7)
        self._splits = [h * w for h, w in LAYER_SHAPES] + [N_ENERGY_VARIABLES]

    def __call__(self, t, x, condition=None, training=False):
        base = self.context(t, x, condition)
        shared = self._act(self.global_layer(tf.concat([base, x], axis=1)))
        ctx = tf.concat([base, shared], axis=1)
        *images, energies = tf.split(x, self._splits, axis=1)
        outs = []
        for branch, img, (h, w) in zip(self.branches, images, LAYER_SHAPES, strict=True):
            out = branch(tf.reshape(img, [-1, h, w, 1]), ctx, training)
            outs.append(tf.reshape(out, [-1, h * w]))
        outs.append(self.energy_path(energies, ctx, training))
        return tf.concat(outs, axis=1)
