"""--model_name moon: the two-moons toy in train_parallel (unconditional, 2-D)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..config import Config  # noqa: E402
from ..fileio import save_figure  # noqa: E402
from ..toys.moons import DEFAULT_NOISE, moons_log_density, sample_moons  # noqa: E402
from ..training.datasets import ArrayData  # noqa: E402
from .base import FFJORDExperiment, Prepared, batched_log_prob, make_sampler  # noqa: E402

DEFAULT_EVENTS = 30_000
TEST_EVENTS = 2_000


def load(cfg: Config, data_folder: str | None, quick: bool, seed: int,
         synthetic: bool = False) -> Prepared:
    """Fresh two-moons draws (noise 0.06): MAX_EVENTS (default 30000) to train, 2000 to test."""
    n = cfg["MAX_EVENTS"] or DEFAULT_EVENTS
    n_test = 256 if quick else TEST_EVENTS
    return Prepared(ArrayData(sample_moons(n, DEFAULT_NOISE, seed)),
                    ArrayData(sample_moons(n_test, DEFAULT_NOISE, seed + 1)))


def report(flow, cfg: Config, prepared: Prepared, out: Path, quick: bool, seed: int) -> dict:
    """Samples (npz + scatter next to the data) and the test NLL against the exact density."""
    samples = make_sampler(flow)(cfg["NSAMPLES"], seed=seed)
    np.savez(out / "samples.npz", samples=samples)
    test = prepared.test.x
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
    for ax, pts, title in ((axes[0], test, "data"), (axes[1], samples, "flow samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    save_figure(fig, out / "samples.png", dpi=110, bbox_inches="tight")
    nll = float(-batched_log_prob(flow, test).mean())
    true_nll = float(-moons_log_density(test, DEFAULT_NOISE).mean())
    return {"test_nll_nats": nll, "true_nll_nats": true_nll, "kl_estimate_nats": nll - true_nll,
            "test_events": len(test), "samples": len(samples)}


EXPERIMENTS = {"moon": FFJORDExperiment(
    name="moon", description="two moons, 2-D, unconditional", condition_dim=0,
    quick={"MAX_EVENTS": 1024, "MAXEPOCH": 2, "BATCH": 128, "NSAMPLES": 256, "NSTACKED": 1,
           "NUM_STEPS": 2, "JIT": False, "EVAL_ATOL": 1e-4, "EVAL_RTOL": 1e-4},
    load=load, report=report)}
