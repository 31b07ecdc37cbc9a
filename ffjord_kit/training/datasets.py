"""Training data for the Trainer: anything with the `Batches` interface.

`ShardedBatches`: in-memory arrays as `tf.data` pipelines (train/validation split, per-rank
shards, a reproducible shuffle per epoch, batching and prefetching). `StreamingBatches`: batches
streamed from files by a per-rank, per-epoch deterministic generator (e.g. the multi-file HDF5
reader of FlashSim), resumable mid-epoch by skipping the batches already done.

The shuffle of epoch e on rank r is a permutation drawn from numpy's generator seeded with
(seed, e, r), so a resumed run sees the same batches as an uninterrupted one, and can skip the
steps of an interrupted epoch that were already done.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tensorflow as tf

from ..distributed.backend import Backend
from ..errors import DataError


class Batches(Protocol):
    """What the Trainer iterates: the same number of steps per epoch on every rank."""

    steps_per_epoch: int
    conditional: bool

    def epoch(self, epoch: int, skip_steps: int = 0) -> Iterable:
        """Batches of `epoch` from step `skip_steps` on: x (B, D), or (x, condition (B, C))."""


@dataclass
class ArrayData:
    """Events x (N, D) float32 and an optional condition (N, C) float32."""

    x: np.ndarray
    condition: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = np.ascontiguousarray(self.x, dtype=np.float32)
        if self.x.ndim != 2:
            raise DataError(f"training data must have shape (N, D), got {self.x.shape}")
        if self.condition is not None:
            self.condition = np.ascontiguousarray(self.condition, dtype=np.float32)
            if self.condition.ndim != 2 or len(self.condition) != len(self.x):
                raise DataError(f"condition must have shape ({len(self.x)}, C), got "
                                f"{self.condition.shape}")
        bad = ~np.isfinite(self.x).all(axis=1)
        if self.condition is not None:
            bad |= ~np.isfinite(self.condition).all(axis=1)
        if bad.any():
            raise DataError(f"{int(bad.sum())} of {len(self.x)} events contain NaN or "
                            f"infinite values (first at row {int(np.argmax(bad))})")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> ArrayData:
        return ArrayData(self.x[index], None if self.condition is None else self.condition[index])


def split_train_validation(data: ArrayData, val_fraction: float,
                           seed: int) -> tuple[ArrayData, ArrayData]:
    """A seeded random split into (train, validation), the same on every rank."""
    n = len(data)
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise DataError(f"{n} events are too few to hold out {n_val} for validation")
    order = np.random.default_rng([seed, 1234]).permutation(n)
    return data.subset(np.sort(order[n_val:])), data.subset(np.sort(order[:n_val]))


class ShardedBatches:
    """This rank's share of a data set, served as fixed-size batches per epoch.

    Every rank runs the same number of steps per epoch, floor(N / size / batch) (at least 1,
    with the batch shrunk to the shard when a shard is smaller than a batch), so collective
    gradient averaging never waits on a rank that ran out of data.
    """

    def __init__(self, data: ArrayData, backend: Backend, batch_size: int, seed: int,
                 shuffle: bool = True):
        n_global = len(data)
        local = data.subset(backend.shard(n_global))
        per_rank = n_global // backend.size
        if per_rank < 1:
            raise DataError(f"{n_global} events cannot be shared among {backend.size} ranks")
        self.batch_size = min(batch_size, per_rank)
        self.steps_per_epoch = per_rank // self.batch_size
        self.conditional = local.condition is not None
        self.n_local, self.rank, self.seed, self.shuffle = len(local), backend.rank, seed, shuffle
        self._x = tf.constant(local.x)
        self._c = tf.constant(local.condition) if self.conditional else None

    def epoch(self, epoch: int, skip_steps: int = 0) -> Iterator:
        """Batches of epoch `epoch` from step `skip_steps` on: x (B, D) or (x, condition).

        A plain generator of gathers from the in-memory tensors: a tf.data pipeline built per
        epoch traced its map function again every epoch (about 40 ms, as long as a dozen
        flow-matching steps on two moons)."""
        used = self.steps_per_epoch * self.batch_size
        order = (np.random.default_rng([self.seed, epoch, self.rank]).permutation(self.n_local)
                 if self.shuffle else np.arange(self.n_local))
        index = order[:used].reshape(self.steps_per_epoch, self.batch_size)[skip_steps:]
        for rows in index:
            rows = tf.constant(rows.astype(np.int64))
            if self.conditional:
                yield tf.gather(self._x, rows), tf.gather(self._c, rows)
            else:
                yield tf.gather(self._x, rows)


class StreamingBatches:
    """Batches from a generator `make_iter(epoch) -> iterator of (x (B, D), c (B, C))` that is
    deterministic for a given epoch on a given rank (a seeded file/chunk order).

    Every epoch has exactly `steps_per_epoch` batches: a shard that runs out early (files of
    uneven length, non-finite rows dropped) starts its own epoch's stream again, so collective
    gradient averaging never waits on a rank that ran out of data.
    """

    conditional = True

    def __init__(self, make_iter: Callable[[int], Iterator], steps_per_epoch: int,
                 x_dim: int, c_dim: int, prefetch: int = 4):
        if steps_per_epoch < 1:
            raise DataError("the data hold fewer rows per rank than one batch")
        self.steps_per_epoch, self._make_iter, self._prefetch = steps_per_epoch, make_iter, prefetch
        self._signature = (tf.TensorSpec([None, x_dim], tf.float32),
                           tf.TensorSpec([None, c_dim], tf.float32))

    def _batches(self, epoch: int, skip_steps: int) -> Iterator:
        def cycle():
            while True:
                empty = True
                for batch in self._make_iter(epoch):
                    empty = False
                    yield batch
                if empty:
                    raise DataError(f"the data stream of epoch {epoch} holds no full batch")

        return itertools.islice(cycle(), skip_steps, self.steps_per_epoch)

    def epoch(self, epoch: int, skip_steps: int = 0) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(
            lambda: self._batches(epoch, skip_steps),
            output_signature=self._signature).prefetch(self._prefetch)
