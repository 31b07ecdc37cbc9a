"""What an experiment provides to the runner: its data and its final report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    """flow.log_prob over x (N, D) in batches (evaluation solver and trace), (N,) float64."""
    out = []
    for i in range(0, len(x), batch):
        c = None if condition is None else condition[i:i + batch]
        out.append(flow.log_prob(x[i:i + batch], c).numpy())
    return np.concatenate(out).astype(np.float64)
