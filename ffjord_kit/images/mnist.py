"""MNIST: readers for the standard files, and the tutorial's image preprocessing.

Readers (nothing is downloaded; files must be on disk):
  - `mnist.npz` (the Keras cache file: x_train, y_train, x_test, y_test), or
  - the four IDX files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or gzipped (`.gz`),
looked up in `--data_folder`, or in ~/.keras/datasets when no folder is given.

Preprocessing (pure functions, exact inverse), for integer pixels p in {0, ..., L-1} (L = 256):
    y = (p + u) / L,  u ~ U[0, 1)          (uniform dequantisation)
    z = logit(alpha + (1 - 2 alpha) y),   alpha = 1e-6
    condition = label / 10
The inverse maps z back to y, and floor(L y) recovers p exactly. Bits per dimension of the
discrete pixels are computed from the flow's log-density of z with the Jacobian of this map:
    log p(y) = log p(z) + sum_i log|dz_i/dy_i|,  dz/dy = (1 - 2 alpha) / (s (1 - s)),
    s = alpha + (1 - 2 alpha) y,
    bits/dim = (-log p(y) / D + log L) / log 2     (the dequantisation bound).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..transforms import ALPHA

# The same squashed logit as the CaloFlow preprocessing: z = logit(alpha + (1 - 2 alpha) y).
from ..transforms import inverse_logit_alpha as inverse_logit_transform
from ..transforms import logit_alpha as logit_transform

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned bytes, 3 or 1 dimensions


@dataclass
class ImageSet:
    """Integer images (N, H, W) uint8 and labels (N,) int64, train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""


def default_mnist_folder() -> Path:
    return Path(os.path.expanduser("~")) / ".keras" / "datasets"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file of unsigned bytes (plain or gzipped): images (N, H, W) or labels (N,)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    if ndim not in _IDX_MAGIC or magic != _IDX_MAGIC[ndim]:
        raise DataError(f"{path}: not an unsigned-byte IDX file of 1 or 3 dimensions "
                        f"(magic number {magic:#010x}, expected 0x00000801 or 0x00000803)")
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise DataError(f"{path}: header says shape {tuple(dims)} ({int(np.prod(dims))} bytes) "
                        f"but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write uint8 images (N, H, W) or labels (N,) as an IDX file (gzipped if it ends in .gz);
    used to make test fixtures in the real format."""
    from ..fileio import atomic_path

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = _IDX_MAGIC[array.ndim].to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with atomic_path(path) as tmp, opener(tmp, "wb") as fh:
        fh.write(header + array.tobytes())
    return Path(path)


def _missing_message(folder: Path) -> str:
    names = ", ".join(IDX_FILES.values())
    return (f"MNIST not found in {folder}: put mnist.npz (keys x_train, y_train, x_test, "
            f"y_test) there, or the four IDX files {names} (each optionally .gz), and point "
            f"--data_folder at that folder (nothing can be downloaded here)")


def _check(images: np.ndarray, labels: np.ndarray, what: str, where: str) -> None:
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{where}: {what} images must be (N, H, W) with N labels, got "
                        f"{images.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: {what} labels must be digits 0-9")


def load_mnist(data_folder: str | os.PathLike | None = None) -> ImageSet:
    """MNIST from `data_folder` (or ~/.keras/datasets): mnist.npz first, else the IDX files."""
    folder = Path(data_folder) if data_folder is not None else default_mnist_folder()
    if data_folder is not None and not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    npz = folder / "mnist.npz"
    if npz.is_file():
        try:
            with np.load(npz) as f:
                missing = [k for k in IDX_FILES if k not in f.files]
                if missing:
                    raise DataError(f"{npz}: missing key '{missing[0]}' (expected x_train, "
                                    f"y_train, x_test, y_test)")
                data = {k: np.asarray(f[k]) for k in IDX_FILES}
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{npz}: cannot read ({exc or type(exc).__name__})") from None
        source = str(npz)
    else:
        data = {}
        for key, stem in IDX_FILES.items():
            found = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
            if not found:
                raise DataError(_missing_message(folder))
            data[key] = read_idx(found[0])
        source = str(folder)
    for split in ("train", "test"):
        _check(data[f"x_{split}"], data[f"y_{split}"], split, source)
    return ImageSet(data["x_train"].astype(np.uint8), data["y_train"].astype(np.int64),
                    data["x_test"].astype(np.uint8), data["y_test"].astype(np.int64), source)


# ------------------------------------------------------------------------------ preprocessing
def dequantize(pixels: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """(p + u) / L with u ~ U[0, 1): integer pixels (N, ...) -> y in [0, 1), float64."""
    p = np.asarray(pixels, dtype=np.float64)
    return (p + rng.uniform(0.0, 1.0, size=p.shape)) / levels


def log_abs_jacobian(y: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """sum_i log|dz_i/dy_i| of `logit_transform` per row, (N,) for y (N, D)."""
    s = alpha + (1.0 - 2.0 * alpha) * np.asarray(y, dtype=np.float64)
    return np.sum(np.log1p(-2.0 * alpha) - np.log(s) - np.log1p(-s), axis=1)


def preprocess_images(pixels: np.ndarray, labels: np.ndarray, levels: int = 256,
                      seed: int = 0, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Integer images (N, H, W) and labels (N,) -> features (N, H*W) float32 (dequantised,
    /L, logit) and condition (N, 1) float32 = label / 10."""
    rng = np.random.default_rng(seed)
    y = dequantize(np.asarray(pixels).reshape(len(pixels), -1), levels, rng)
    features = logit_transform(y, alpha).astype(np.float32)
    condition = (np.asarray(labels, dtype=np.float32) / 10.0).reshape(-1, 1)
    return features, condition


def postprocess_images(features: np.ndarray, shape: tuple[int, int], levels: int = 256,
                       alpha: float = ALPHA) -> np.ndarray:
    """The inverse of `preprocess_images`: features (N, H*W) -> integer pixels (N, H, W) int64
    (floor(L y), clipped to [0, L-1] because flow samples may leave [0, 1))."""
    y = inverse_logit_transform(features, alpha)
    pixels = np.clip(np.floor(y * levels), 0, levels - 1).astype(np.int64)
    return pixels.reshape(len(features), *shape)


def labels_from_condition(condition: np.ndarray) -> np.ndarray:
    """The inverse of label / 10: (N, 1) -> (N,) int64."""
    return np.rint(np.asarray(condition, dtype=np.float64).reshape(-1) * 10).astype(np.int64)


def bits_per_dim(log_prob_z: np.ndarray, features: np.ndarray, levels: int = 256,
                 alpha: float = ALPHA) -> np.ndarray:
    """Bits/dim of the discrete pixels, per image (N,), from the flow's log p(z) (nats, (N,))
    and the preprocessed features z (N, D): the logit Jacobian and the 1/L bin width included.
    """
    z = np.asarray(features, dtype=np.float64)
    y = inverse_logit_transform(z, alpha)
    log_p_y = np.asarray(log_prob_z, dtype=np.float64) + log_abs_jacobian(y, alpha)
    d = z.shape[1]
    return (-log_p_y / d + np.log(levels)) / np.log(2.0)
