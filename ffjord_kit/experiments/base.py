"""What an experiment provides to the runner: its data and its final report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..training.datasets import ArrayData

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Prepared:
    """Preprocessed training events and held-out test events, plus what the report needs."""

    train: ArrayData
    test: ArrayData
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Experiment:
    """name: --model_name. condition_dim: C of the flow (0: unconditional).
    quick: config overrides of the --quick smoke mode.
    load(cfg, data_folder, quick, seed) -> Prepared.
    report(flow, cfg, prepared, out_dir, quick, seed) -> metrics dict (writes samples, plots).
    """

    name: str
    description: str
    condition_dim: int
    quick: dict[str, Any]
    load: Callable[..., Prepared]
    report: Callable[..., dict[str, Any]]

    @property
    def default_config(self) -> Path:
        return REPO_ROOT / "configs" / f"config_{self.name}.json"


def batched_log_prob(flow, x: np.ndarray, condition: np.ndarray | None = None,
                     batch: int = 256) -> np.ndarray:
    """flow.log_prob over x (N, D) in batches (evaluation solver and trace), (N,) float64.

    Compiled once (tf.function): TFP's adaptive solver is far slower op by op. The last batch
    is padded to the full size so the graph is traced only once.
    """
    fn = tf.function(lambda xb, cb: flow.log_prob(xb, cb))
    out, n = [], len(x)
    batch = min(batch, n)
    for i in range(0, n, batch):
        idx = np.arange(i, i + batch) % n  # wraps around: pads the last batch
        c = None if condition is None else tf.constant(condition[idx])
        out.append(fn(tf.constant(x[idx]), c).numpy()[: min(batch, n - i)])
    return np.concatenate(out).astype(np.float64)


def make_sampler(flow):
    """`sample(n, condition=None, seed=0) -> (n, D) float32`: draws as `flow.sample` (base
    points from numpy's generator `seed`) with the base-to-data solve compiled once."""
    forward = tf.function(lambda zb, cb: flow.to_data(zb, cb)[0])

    def sample(n: int, condition: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, flow.config.dim))
        c = None if condition is None else tf.constant(condition, tf.float32)
        return forward(tf.constant(z, tf.float32), c).numpy()

    return sample
