"""What the Horovod and TensorFlow backends share: guarded collectives over all ranks.

A subclass supplies `_broadcast_from_chief(variables)` and `_mean_tensor(tensor)`; this class
turns them into `prepare` (weights and optimizer slots from rank 0), `mean`, `barrier`, each
under the watchdog's deadline, with lost-peer errors reported in one line.
"""

from __future__ import annotations

import abc

import numpy as np
import tensorflow as tf

from .backend import Backend
from .launch import Timeouts
from .watchdog import Watchdog, call_guarded


def model_and_optimizer_variables(variables, optimizer=None) -> list:
    """The trainable variables followed by the optimizer's (step count, moments)."""
    variables = list(variables)
    if optimizer is not None:
        opt_vars = optimizer.variables  # a property in tf_keras' optimizer, a method in v1
        variables += list(opt_vars() if callable(opt_vars) else opt_vars)
    return variables


class CollectiveBackend(Backend):
    """A multi-process backend; `lost_errors` are the engine's 'a peer is gone' exceptions."""

    lost_errors: tuple[type[BaseException], ...] = ()

    def _init_guard(self, rank: int, timeouts: Timeouts | None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.watchdog = Watchdog(rank)

    def _guarded(self, what: str, timeout_s: float, fn, *args):
        return call_guarded(self.watchdog, what, timeout_s, self.lost_errors, fn, *args)

    @abc.abstractmethod
    def _broadcast_from_chief(self, variables: list) -> None:
        """Overwrite every rank's `variables` with rank 0's values."""

    @abc.abstractmethod
    def _mean_tensor(self, tensor: tf.Tensor) -> tf.Tensor:
        """`tensor` averaged over ranks."""

    def prepare(self, variables, optimizer=None) -> None:
        """Every rank starts from rank 0's weights and optimizer state (e.g. on resume)."""
        self._guarded("broadcast of rank 0's weights", self.timeouts.startup,
                      self._broadcast_from_chief,
                      model_and_optimizer_variables(variables, optimizer))

    def mean(self, value):
        """A float or array averaged over ranks (float64 on the wire)."""
        out = self._guarded("averaging a metric", self.timeouts.step, self._mean_tensor,
                            tf.constant(np.asarray(value, dtype=np.float64))).numpy()
        return float(out) if np.ndim(value) == 0 else out

    def barrier(self) -> None:
        self.mean(0.0)
