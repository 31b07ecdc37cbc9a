"""--model_name mnist | digits: conditional image flows (condition = label / 10).

mnist reads the real MNIST files (data/mnist.py); with --synthetic, when they are missing, a
stand-in made from the 8x8 digits resampled to 28x28 is written as
<data_folder>/mnist/mnist.npz. digits is scikit-learn's bundled 8x8 set, an offline stand-in
(data/digits.py). Both use the tutorial's preprocessing: dequantisation, / L,
logit with alpha 1e-6. The report draws a 3x3 grid of samples for each requested digit and the
test bits/dim of the discrete pixels (the preprocessing Jacobian included).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..config import Config  # noqa: E402
from ..errors import DataError  # noqa: E402
from ..fileio import atomic_path, save_figure  # noqa: E402
from ..images.digits import DIGITS_LEVELS, load_digits  # noqa: E402
from ..images.mnist import (  # noqa: E402
    ImageSet,
    bits_per_dim,
    load_mnist,
    postprocess_images,
    preprocess_images,
)
from ..training.datasets import ArrayData  # noqa: E402
from .base import (  # noqa: E402
    FFJORDExperiment,
    Prepared,
    batched_log_prob,
    locate_data,
    make_sampler,
)


def _prepare(images: ImageSet, cfg: Config, levels: int, quick: bool, seed: int) -> Prepared:
    shape = images.x_train.shape[1:]
    if int(np.prod(shape)) != int(np.prod(cfg["SHAPE"])):
        raise DataError(f"{images.source}: images of shape {shape} do not match the config's "
                        f"SHAPE {cfg['SHAPE']}")
    n = cfg["MAX_EVENTS"] or len(images.x_train)
    n_test = min(len(images.x_test), 32 if quick else 500)
    x, c = preprocess_images(images.x_train[:n], images.y_train[:n], levels, seed)
    xt, ct = preprocess_images(images.x_test[:n_test], images.y_test[:n_test], levels, seed + 1)
    return Prepared(ArrayData(x, c), ArrayData(xt, ct),
                    {"levels": levels, "image_shape": tuple(shape), "source": images.source})


def _has_mnist(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "mnist.npz").is_file()
                                or any(folder.glob("train-images-idx3-ubyte*")))


def write_synthetic_mnist(folder: Path, seed: int = 0) -> Path:
    """A SYNTHETIC stand-in for MNIST: scikit-learn's 8x8 digits resampled (bilinear) to 28x28
    with 256 grey levels, as folder/mnist.npz in the Keras layout."""
    from scipy.ndimage import zoom

    digits = load_digits(seed=seed)

    def upscale(images: np.ndarray) -> np.ndarray:
        big = zoom(images.astype(np.float64) * (255.0 / 16.0), (1, 28 / 8, 28 / 8), order=1)
        return np.clip(np.rint(big), 0, 255).astype(np.uint8)

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "mnist.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x_train=upscale(digits.x_train), y_train=digits.y_train,
                 x_test=upscale(digits.x_test), y_test=digits.y_test)
    return folder / "mnist.npz"


def load_mnist_experiment(cfg: Config, data_folder: str | None, quick: bool, seed: int,
                          synthetic: bool = False) -> Prepared:
    if synthetic:
        folder = locate_data(data_folder, "mnist", _has_mnist, write_synthetic_mnist, True,
                             "mnist.npz or the four MNIST IDX files")
        return _prepare(load_mnist(folder), cfg, 256, quick, seed)
    try:
        images = load_mnist(data_folder)
    except DataError as exc:
        raise DataError(f"{exc}; or pass --synthetic to train on the project's synthetic "
                        f"stand-in") from None
    return _prepare(images, cfg, 256, quick, seed)


def load_digits_experiment(cfg: Config, data_folder: str | None, quick: bool, seed: int,
                           synthetic: bool = False) -> Prepared:
    return _prepare(load_digits(seed=seed), cfg, DIGITS_LEVELS, quick, seed)


def report(flow, cfg: Config, prepared: Prepared, out: Path, quick: bool, seed: int) -> dict:
    """Per requested digit: 9 samples (npz) and a 3x3 grid; test bits/dim."""
    levels, shape = prepared.meta["levels"], prepared.meta["image_shape"]
    grids, sample = {}, make_sampler(flow)
    for digit in cfg["DIGITS"]:
        z = sample(9, np.full((9, 1), digit / 10.0, np.float32),
                            seed=seed + digit)
        grids[str(digit)] = postprocess_images(z, shape, levels)
        fig, axes = plt.subplots(3, 3, figsize=(4, 4))
        for ax, img in zip(axes.ravel(), grids[str(digit)], strict=True):
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=levels - 1)
            ax.axis("off")
        fig.suptitle(f"samples for digit {digit}")
        save_figure(fig, out / f"samples_digit_{digit}.png", dpi=100, bbox_inches="tight")
    np.savez(out / "samples.npz", **{f"digit_{k}": v for k, v in grids.items()})
    test = prepared.test
    log_pz = batched_log_prob(flow, test.x, test.condition, batch=64)
    bpd = bits_per_dim(log_pz, test.x, levels)
    return {"test_bits_per_dim": float(bpd.mean()),
            "test_bits_per_dim_stderr": float(bpd.std() / np.sqrt(len(bpd))),
            "test_nll_logit_space_nats": float(-log_pz.mean()), "test_events": len(bpd),
            "levels": levels, "data_source": prepared.meta["source"]}


_QUICK = {"MAX_EVENTS": 256, "MAXEPOCH": 2, "BATCH": 64, "NSAMPLES": 9, "DIGITS": [3],
          "NSTACKED": 1, "NUM_STEPS": 1, "JIT": False, "NLAYERS": 2, "LAYER_SIZE": [8, 16],
          "EVAL_TRACE": "hutchinson_gaussian", "EVAL_ATOL": 1e-3, "EVAL_RTOL": 1e-3}
EXPERIMENTS = {
    "mnist": FFJORDExperiment(name="mnist", description="MNIST 28x28 (real files needed)",
                        condition_dim=1, quick=_QUICK, load=load_mnist_experiment,
                        report=report),
    "digits": FFJORDExperiment(name="digits",
                         description="scikit-learn 8x8 digits, an offline stand-in for MNIST",
                         condition_dim=1, quick=_QUICK, load=load_digits_experiment,
                         report=report),
}
