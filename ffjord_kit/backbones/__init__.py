"""Backbones for `train_parallel.py`, registered in `networks.BACKBONES` on import.

- `dense_unet`: the tutorial's dense encoder-decoder ([t, condition] fed to every layer, skips
  merged as (h + skip) / sqrt(2)).
- `conv_unet`: its convolutional variant for image-shaped data (embedding tiled as channels).
- `calorimeter_branches`: one convolutional branch per calorimeter layer image (3x96, 12x12,
  12x6) and a dense path for the three layer-energy variables, sharing a global context.
"""

from .calorimeter_branches import CalorimeterBranches
from .conv_unet import ConvUNet
from .dense_unet import DenseUNet

__all__ = ["CalorimeterBranches", "ConvUNet", "DenseUNet"]
