"""Epoch-level schedules driven by the validation loss, as in the tutorial's Keras callbacks:
ReduceLROnPlateau and EarlyStopping (best-weight restore is done by the Trainer). Both keep
their whole state in a JSON-able dict so a resumed run continues exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class ReduceOnPlateau:
    """Multiply the learning rate by `factor` after `patience` epochs without an improvement
    of more than `min_delta` (Keras ReduceLROnPlateau semantics, cooldown 0)."""

    patience: int = 5
    factor: float = 0.1
    min_lr: float = 0.0
    min_delta: float = 1e-4
    best: float = math.inf
    wait: int = 0

    def update(self, value: float, lr: float) -> float:
        """Record this epoch's validation loss; return the learning rate for the next epoch."""
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return lr
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            return max(lr * self.factor, self.min_lr)
        return lr

    def state(self) -> dict:
        return asdict(self)


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without a new best validation loss (0: never stop)."""

    patience: int = 10
    best: float = math.inf
    best_epoch: int = -1
    wait: int = 0

    def update(self, value: float, epoch: int) -> tuple[bool, bool]:
        """Record epoch `epoch`'s validation loss; returns (is_new_best, should_stop)."""
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        return False, self.patience > 0 and self.wait >= self.patience

    def state(self) -> dict:
        return asdict(self)
