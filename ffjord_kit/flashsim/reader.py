"""FlashSim HDF5 files (one dataset `data`, float32 [N, C + T], conditions then targets), one or
many, and a streaming reader that feeds tf.data.

The reference reader fetched one row per `__getitem__` and starved the GPU. Here the row space
of all files is cut into contiguous chunks (`chunk_rows`, default 16384 rows, one HDF5 slice
read each); a rank takes every `size`-th chunk of a per-epoch shuffled chunk order (disjoint
shards that cover the data), keeps `shuffle_chunks` chunks in a buffer, shuffles rows across
them (so across files) and emits whole batches. Preprocessing runs once per chunk, vectorised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from ..fileio import atomic_path
from .preprocessing import check_columns, drop_nonfinite_rows
from .schemas import Schema

DATASET = "data"


def write_flashsim_h5(path: str | os.PathLike, rows: np.ndarray, schema: Schema) -> Path:
    """Write rows [N, C + T] as `data` (float32) atomically, with column names as attributes."""
    rows = np.asarray(rows, np.float32)
    check_columns(rows, schema, "rows to write")
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(DATASET, data=rows, chunks=(min(len(rows), 16384) or 1,
                                                         rows.shape[1]))
            f.attrs["kind"] = schema.kind
            f.attrs["n_conditions"] = schema.n_conditions
            f.attrs["columns"] = schema.condition_names + schema.target_names
    return Path(path)


def file_lengths(paths: Sequence[str | os.PathLike], schema: Schema) -> list[int]:
    """Rows per file; DataError naming the file when it is missing, has no `data` or has the
    wrong number of columns."""
    if not paths:
        raise DataError("no input files given")
    lengths = []
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"input file {p} does not exist")
        try:
            with h5py.File(p, "r") as f:
                if DATASET not in f:
                    raise DataError(f"{p} has no dataset {DATASET!r} (keys: {list(f.keys())})")
                shape = f[DATASET].shape
        except OSError as exc:
            raise DataError(f"{p} is not a readable HDF5 file: {exc}") from None
        if len(shape) != 2 or shape[1] != schema.n_columns:
            raise DataError(f"{p}: {DATASET!r} must be [N, {schema.n_columns}] "
                            f"({schema.n_conditions} {schema.kind} conditions then "
                            f"{schema.n_targets} targets), got {list(shape)}")
        lengths.append(int(shape[0]))
    return lengths


def read_rows(paths: Sequence[str | os.PathLike], schema: Schema,
              limit: int | None = None) -> np.ndarray:
    """All rows of `paths` in order (at most `limit`), float32 [N, C + T]."""
    file_lengths(paths, schema)
    parts, total = [], 0
    for p in paths:
        with h5py.File(p, "r") as f:
            take = None if limit is None else max(limit - total, 0)
            part = f[DATASET][:take] if take is not None else f[DATASET][:]
        parts.append(np.asarray(part, np.float32))
        total += len(part)
        if limit is not None and total >= limit:
            break
    return np.concatenate(parts, axis=0)


@dataclass
class ChunkedReader:
    """Streaming, sharded, shuffling reader over FlashSim files.

    `transform(rows) -> (x, c)` maps a chunk of finite rows [n, C + T] to model arrays; rows with
    NaN/inf are dropped first and counted in `dropped_rows`.
    """

    paths: Sequence[str | os.PathLike]
    schema: Schema
    chunk_rows: int = 16384
    shuffle_chunks: int = 8
    rank: int = 0
    size: int = 1
    seed: int = 0
    limit: int | None = None
    dropped_rows: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.size:
            raise DataError(f"rank must be in [0, {self.size}), got {self.rank}")
        self.lengths = file_lengths(self.paths, self.schema)
        chunks = []  # (file index, start, stop), never crossing a file boundary
        remaining = self.limit if self.limit is not None else sum(self.lengths)
        for i, n in enumerate(self.lengths):
            n = min(n, remaining)
            remaining -= n
            chunks += [(i, s, min(s + self.chunk_rows, n)) for s in range(0, n, self.chunk_rows)]
        if not chunks:
            raise DataError("the input files hold no rows")
        self.chunks = chunks

    @property
    def n_rows(self) -> int:
        """Rows this rank sees per epoch (before dropping non-finite rows)."""
        return sum(b - a for k, (_, a, b) in enumerate(self.chunks) if k % self.size == self.rank)

    def _epoch_chunks(self, epoch: int) -> list[tuple[int, int, int]]:
        # Same permutation on every rank (seed, epoch), then a strided shard: disjoint, complete.
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.chunks))
        return [self.chunks[k] for k in order[self.rank::self.size]]

    def iter_chunks(self, epoch: int = 0) -> Iterator[np.ndarray]:
        """This rank's chunks of finite rows for `epoch`, in shuffled chunk order."""
        files = [h5py.File(p, "r") for p in self.paths]
        try:
            for i, a, b in self._epoch_chunks(epoch):
                rows = np.asarray(files[i][DATASET][a:b], np.float32)
                rows, dropped = drop_nonfinite_rows(rows)
                self.dropped_rows += dropped
                yield rows
        finally:
            for f in files:
                f.close()

    def iter_batches(self, batch_size: int, transform: Callable, epoch: int = 0,
                     drop_remainder: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Shuffled (x [B, T], c [B, C]) batches; rows mixed across `shuffle_chunks` chunks."""
        rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
        buf_x, buf_c, held = [], [], 0
        chunk_iter = self.iter_chunks(epoch)

        def drain(final):
            nonlocal buf_x, buf_c, held
            x, c = np.concatenate(buf_x), np.concatenate(buf_c)
            perm = rng.permutation(len(x))
            x, c = x[perm], c[perm]
            n_full = len(x) // batch_size * batch_size
            keep = len(x) if final else n_full
            for s in range(0, keep, batch_size):
                xb, cb = x[s:s + batch_size], c[s:s + batch_size]
                if len(xb) == batch_size or not drop_remainder:
                    yield xb, cb
            # Unfinished rows stay for the next drain (mixed with new chunks).
            buf_x, buf_c = ([x[n_full:]], [c[n_full:]]) if not final else ([], [])
            held = len(buf_x[0]) if buf_x else 0

        for rows in chunk_iter:
            if len(rows) == 0:
                continue
            x, c = transform(rows)
            buf_x.append(x)
            buf_c.append(c)
            held += len(x)
            if len(buf_x) >= self.shuffle_chunks:
                yield from drain(final=False)
        if held:
            yield from drain(final=True)


def make_dataset(reader: ChunkedReader, batch_size: int, transform: Callable, epoch: int,
                 n_targets: int, n_conditions: int, prefetch: int = 4):
    """tf.data.Dataset of (x [B, T], c [B, C]) float32 batches from `reader`, prefetched so
    reading and preprocessing overlap the training step."""
    import tensorflow as tf

    return tf.data.Dataset.from_generator(
        lambda: reader.iter_batches(batch_size, transform, epoch),
        output_signature=(tf.TensorSpec([None, n_targets], tf.float32),
                          tf.TensorSpec([None, n_conditions], tf.float32)),
    ).prefetch(prefetch)
