"""Shuffled train/validation/test split, reproducible from a seed."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from .schema import KLMTable


def split_indices(n: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                  ) -> dict[str, np.ndarray]:
    """Disjoint index arrays `train`, `val`, `test` covering range(n) after one seeded
    shuffle (so consecutive rows of a split do not share a simulation run's context)."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1, "
                          f"got {list(fractions)}")
    if n < 10:
        raise DataError(f"need at least 10 rows to split 80/10/10, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
            "test": perm[n_train + n_val:]}


def split_table(table: KLMTable, seed: int,
                fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, KLMTable]:
    """`split_indices` applied to a table."""
    return {k: table.take(v) for k, v in split_indices(len(table), seed, fractions).items()}
