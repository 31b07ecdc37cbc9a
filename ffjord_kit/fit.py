"""The toy scripts' recipe on the one Trainer: arrays in memory, Adam with cosine decay per step
and gradient clipping, RNODE weights, no validation split; maximum likelihood or flow matching
(optionally ending with a maximum-likelihood fine-tune).

    history = fit(flow, x, FitSettings(epochs=150, lr=5e-3), condition=c)

A NaN or infinite loss rolls back to the last epoch's checkpoint and lowers the learning rate
once (the Trainer's policy); a second one raises `TrainingDiverged`. The checkpoints live in a
throwaway folder unless `run_dir` is given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .distributed.backend import SingleProcess
from .flows.flow_matching import FlowMatching
from .training.datasets import ArrayData, ShardedBatches
from .training.loop import Trainer, TrainSettings

HISTORY = ("epoch", "loss", "nll", "nfe_per_step", "seconds", "lr")


@dataclass
class FitSettings:
    epochs: int = 20
    batch_size: int = 512
    lr: float = 5e-3
    lr_final_fraction: float = 0.05  # cosine decay to lr * this over the run
    kinetic: float = 0.0
    jacobian: float = 0.0
    clip_norm: float | None = 1.0
    jit_compile: bool = True
    seed: int = 0
    time_budget_s: float | None = None  # stop after this much training time
    objective: str = "max_likelihood"  # | flow_matching
    flow_matching: FlowMatching = field(default_factory=FlowMatching)
    finetune_epochs: int = 0  # flow matching: the last N epochs by maximum likelihood
    finetune_lr: float = 0.0  # the fine-tune's peak lr (0: the cosine schedule goes on)

    def train_settings(self) -> TrainSettings:
        return TrainSettings(
            lr=self.lr, max_epochs=self.epochs, early_stop=0, schedule="cosine_step",
            min_lr=self.lr * self.lr_final_fraction, clip_norm=self.clip_norm or 0.0,
            kinetic=self.kinetic, jacobian=self.jacobian, jit_compile=self.jit_compile,
            restore_best=False, time_budget_s=self.time_budget_s, objective=self.objective,
            flow_matching=self.flow_matching, finetune_epochs=self.finetune_epochs,
            finetune_lr=self.finetune_lr)


def fit(flow, x: np.ndarray, settings: FitSettings, condition: np.ndarray | None = None,
        on_epoch: Callable[[int, dict], None] | None = None, log: Callable = print,
        run_dir: str | Path | None = None) -> dict:
    """Train `flow` on x (N, D) [and condition (N, C)]; returns the history dict
    (epoch, loss, nll, nfe_per_step, seconds, lr per epoch). NaN rows in x are a DataError."""
    batches = ShardedBatches(ArrayData(x, condition), SingleProcess(), settings.batch_size,
                             settings.seed)
    with tempfile.TemporaryDirectory(prefix="ffjord_kit_fit_") as scratch:
        trainer = Trainer(flow, settings.train_settings(), run_dir=run_dir or scratch, log=log,
                          tensorboard=False, progress=False)
        result = trainer.fit(batches, on_epoch=on_epoch)
    return {k: result.history[k] for k in HISTORY}
