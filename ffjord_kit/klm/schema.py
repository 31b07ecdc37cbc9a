"""Column schema of a KLM timing table: four context columns and one target column.

Each row is one optical photon detected on the bar's sensor, produced by a muon crossing the
bar. Units: lengths in cm, times in ns, angles in rad, momenta in GeV/c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Column:
    """One named column: its canonical name, unit and meaning."""

    name: str
    unit: str
    description: str


CONTEXT_COLUMNS: tuple[Column, ...] = (
    Column("hit_z", "cm", "muon hit position along the bar (sensor at +L/2)"),
    Column("mu_hit_time", "ns", "time the muon reaches the bar"),
    Column("theta", "rad", "muon polar angle"),
    Column("mu_momentum", "GeV/c", "muon momentum |p|"),
)
TARGET_COLUMN = Column("photon_time", "ns", "photon hit time on the sensor")

CONTEXT_NAMES: tuple[str, ...] = tuple(c.name for c in CONTEXT_COLUMNS)
TARGET_NAME: str = TARGET_COLUMN.name
ALL_NAMES: tuple[str, ...] = (*CONTEXT_NAMES, TARGET_NAME)
UNITS: dict[str, str] = {c.name: c.unit for c in (*CONTEXT_COLUMNS, TARGET_COLUMN)}


@dataclass(frozen=True)
class KLMTable:
    """Context (N, 4) and photon time (N,) as float64, rows aligned, all finite."""

    context: np.ndarray
    time: np.ndarray

    def __post_init__(self) -> None:
        if self.context.ndim != 2 or self.context.shape[1] != len(CONTEXT_NAMES):
            raise DataError(f"context must have shape (N, {len(CONTEXT_NAMES)}) with columns "
                            f"{list(CONTEXT_NAMES)}, got {self.context.shape}")
        if self.time.shape != (self.context.shape[0],):
            raise DataError(f"{TARGET_NAME} must have shape ({self.context.shape[0]},), "
                            f"got {self.time.shape}")

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def column(self, name: str) -> np.ndarray:
        """One column by canonical name, shape (N,)."""
        if name == TARGET_NAME:
            return self.time
        if name not in CONTEXT_NAMES:
            raise DataError(f"unknown column {name!r}; known: {list(ALL_NAMES)}")
        return self.context[:, CONTEXT_NAMES.index(name)]

    def take(self, index: np.ndarray) -> KLMTable:
        """Rows `index` (integer array or boolean mask) as a new table."""
        return KLMTable(self.context[index], self.time[index])


def table_from_columns(columns: dict[str, np.ndarray], source: str = "input") -> KLMTable:
    """Build a table from canonical-name -> 1-D array; rejects missing columns, ragged
    lengths and non-finite rows with a message naming the column and the row count."""
    missing = [n for n in ALL_NAMES if n not in columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; need {list(ALL_NAMES)}")
    arrays = {}
    for name in ALL_NAMES:
        a = np.asarray(columns[name])
        if a.ndim != 1:
            raise DataError(f"{source}: column {name!r} must be 1-D, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{source}: column {name!r} must be numeric, got {a.dtype}")
        arrays[name] = a.astype(np.float64)
    lengths = {n: len(a) for n, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{source}: columns have different lengths {lengths}")
    if next(iter(lengths.values())) == 0:
        raise DataError(f"{source}: the table has no rows")
    for name, a in arrays.items():
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column {name!r} has {int(bad.sum())} non-finite "
                            f"(NaN/inf) row(s), first at row {first}")
    nonpositive = arrays["mu_momentum"] <= 0
    if nonpositive.any():
        raise DataError(f"{source}: column 'mu_momentum' must be > 0 (GeV/c); "
                        f"{int(nonpositive.sum())} row(s) are not, first at row "
                        f"{int(np.flatnonzero(nonpositive)[0])}")
    context = np.stack([arrays[n] for n in CONTEXT_NAMES], axis=1)
    return KLMTable(context, arrays[TARGET_NAME])
