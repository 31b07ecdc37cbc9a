"""The interface between the training loop and a data-parallel engine.

The training loop never imports Horovod or tf.distribute; it asks a `Backend` for:

- `rank`, `size`, `local_rank`, `is_chief` (rank 0 alone writes checkpoints, logs and plots);
- `scope()`: a context in which the model and optimizer are created (TF's multi-worker strategy
  needs its variables created under its scope; others return a null context);
- `prepare(variables, optimizer)`: once the variables exist, make every rank start equal
  (Horovod broadcasts from rank 0);
- `train_step(loss_and_grad, apply)`: wrap a per-rank `loss_and_grad(x, condition)` ->
  (loss, aux, grads) and `apply(grads)` into a step whose gradients are averaged over ranks,
  returning (loss, aux) averaged over ranks;
- `mean(value)`: a float or array averaged over ranks (validation loss, metrics);
- `shard(n)`: the indices of n events this rank reads (every size-th event, from rank);
- `barrier()` and `shutdown()`;
- `writes_on_all_ranks`: True when every rank must take part in writing a checkpoint or a
  model (TF's engine all-reduces synchronised batch-norm statistics when they are read), the
  others into a throwaway folder (`training.checkpoint.rank_target`).

`SingleProcess` is the trivial engine; `ffjord_kit.distributed` adds Horovod and TF multi-worker.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable

import numpy as np


class Backend(abc.ABC):
    name = "base"
    rank, size, local_rank = 0, 1, 0
    writes_on_all_ranks = False

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def scope(self):
        return contextlib.nullcontext()

    def prepare(self, variables, optimizer=None) -> None:
        """Called once after the variables (and optimizer slots) exist; nothing to sync here."""
        return None

    @abc.abstractmethod
    def train_step(self, loss_and_grad: Callable, apply: Callable) -> Callable:
        """A step fn(x, condition) -> (loss, aux), gradients averaged over ranks."""

    def mean(self, value):
        return value

    def shard(self, n: int) -> np.ndarray:
        """Indices of the events this rank reads: every size-th event starting at rank."""
        return np.arange(self.rank, n, self.size)

    def barrier(self) -> None:
        """Wait for all ranks (a single process has nobody to wait for)."""
        return None

    def shutdown(self) -> None:
        """Release the engine's resources (none by default)."""
        return None


class SingleProcess(Backend):
    """One process, no communication."""

    name = "none"

    def train_step(self, loss_and_grad: Callable, apply: Callable) -> Callable:
        def step(x, condition=None):
            loss, aux, grads = loss_and_grad(x, condition)
            apply(grads)
            return loss, aux

        return step
