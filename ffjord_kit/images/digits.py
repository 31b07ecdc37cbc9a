"""scikit-learn's bundled 8x8 handwritten digits: an OFFLINE STAND-IN for MNIST.

MNIST cannot be downloaded here; scikit-learn ships 1797 8x8 digit images (pixel values 0-16,
i.e. L = 17 levels) inside the package. `--model_name digits` trains the same image pipeline on
them (dequantisation, logit, condition label / 10, convolutional U-Net). It is a different,
much smaller data set than MNIST: its numbers (bits/dim with L = 17) are not MNIST numbers.
"""

from __future__ import annotations

import numpy as np

from .mnist import ImageSet

DIGITS_LEVELS: int = 17
DIGITS_SHAPE: tuple[int, int] = (8, 8)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """The 1797 sklearn digits as uint8 images (N, 8, 8) in 0-16, split train/test (seeded)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return ImageSet(images[train], labels[train], images[test], labels[test],
                    source="sklearn.datasets.load_digits (8x8, 17 levels)")
