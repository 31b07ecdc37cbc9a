"""FlashSim preprocessing, in two invertible stages (pure functions on numpy arrays).

1. Extraction (physical reco <-> file columns), `reco_to_targets` / `targets_to_reco`:
   ratios and differences to gen values, phi differences wrapped to [-pi, pi], negative scores
   set to -0.1, clips. Exact inverse for every value inside the clip range.
2. Model space (file columns <-> what the flow sees), `ModelTransform`:
   conditions: optional log/log1p, then standardisation;
   targets: atan(k (x - c)) or log(x + c) squashing, dequantisation of integers and booleans
   with 0.1 N(0, 1) noise, then standardisation. The inverse undoes the standardisation and the
   squashing exactly and rounds integers / thresholds booleans at 0.5 (which recovers the
   original value whenever the noise stayed below 0.5, i.e. except with probability 6e-7).

Rows with NaN or infinite values are dropped and counted (`drop_nonfinite_rows`), as the
reference preprocessing does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .schemas import Column, Schema

DEQUANTISATION_SIGMA = 0.1


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Wrap angle differences (radians) to [-pi, pi)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def _gen_values(schema: Schema, conditions: np.ndarray, col: Column) -> np.ndarray:
    g = conditions[:, schema.condition_index(col.gen)].astype(np.float64)
    return np.exp(g) if col.gen_transform == "log" else g


def drop_nonfinite_rows(data: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows [N, F] with any NaN/inf removed; returns (clean rows, number dropped)."""
    ok = np.all(np.isfinite(data), axis=1)
    return data[ok], int((~ok).sum())


def check_columns(data: np.ndarray, schema: Schema, what: str = "data") -> None:
    """DataError naming the expected layout unless `data` is [N, n_conditions + n_targets]."""
    if data.ndim != 2 or data.shape[1] != schema.n_columns:
        raise DataError(f"{what} must be [N, {schema.n_columns}] ({schema.n_conditions} "
                        f"{schema.kind} conditions then {schema.n_targets} targets), "
                        f"got shape {list(data.shape)}")


# ---- stage 1: extraction ------------------------------------------------------------------------
def reco_to_targets(schema: Schema, conditions: np.ndarray,
                    reco: dict[str, np.ndarray]) -> np.ndarray:
    """Physical reco variables (dict by `reco_name`, or by column name where the column has no
    relation) + gen conditions [N, C] -> target columns [N, T] (float32)."""
    cols = []
    for col in schema.targets:
        key = col.reco_name or col.name
        if key not in reco:
            raise DataError(f"reco variable {key!r} missing for column {col.name}")
        x = np.asarray(reco[key], np.float64)
        if col.relation == "ratio":
            x = x / _gen_values(schema, conditions, col)
        elif col.relation == "diff":
            x = x - _gen_values(schema, conditions, col)
        elif col.relation == "dphi":
            x = wrap_phi(x - _gen_values(schema, conditions, col))
        if col.negative_to is not None:
            x = np.where(x < 0, col.negative_to, x)
        if col.clip is not None:
            x = np.clip(x, *col.clip)
        cols.append(x)
    return np.stack(cols, axis=1).astype(np.float32)


def targets_to_reco(schema: Schema, conditions: np.ndarray,
                    targets: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of `reco_to_targets`: target columns [N, T] + conditions -> physical reco."""
    out = {}
    for j, col in enumerate(schema.targets):
        x = targets[:, j].astype(np.float64)
        if col.relation == "ratio":
            x = x * _gen_values(schema, conditions, col)
        elif col.relation == "diff":
            x = x + _gen_values(schema, conditions, col)
        elif col.relation == "dphi":
            x = wrap_phi(x + _gen_values(schema, conditions, col))
        out[col.reco_name or col.name] = x
    return out


# ---- stage 2: model space -----------------------------------------------------------------------
def _squash(col: Column, x: np.ndarray) -> np.ndarray:
    if col.squash is None:
        return x
    if col.squash[0] == "atan":
        _, k, c = col.squash
        return np.arctan(k * (x - c))
    _, c = col.squash
    return np.log(np.maximum(x + c, 1e-30))


def _unsquash(col: Column, y: np.ndarray) -> np.ndarray:
    if col.squash is None:
        return y
    if col.squash[0] == "atan":
        _, k, c = col.squash
        # Samples can land outside (-pi/2, pi/2); the clip keeps tan finite and monotonic.
        return np.tan(np.clip(y, -np.pi / 2 + 1e-6, np.pi / 2 - 1e-6)) / k + c
    _, c = col.squash
    return np.exp(y) - c


@dataclass
class ModelTransform:
    """Fitted model-space transform: standardisation constants for conditions and targets."""

    schema: Schema
    cond_mean: np.ndarray
    cond_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    @classmethod
    def fit(cls, schema: Schema, data: np.ndarray, seed: int = 0) -> ModelTransform:
        """Standardisation constants from file rows [N, C + T] (finite rows only)."""
        check_columns(data, schema)
        data, _ = drop_nonfinite_rows(data)
        if len(data) < 2:
            raise DataError("need at least 2 finite rows to fit the preprocessing")
        c = _condition_features(schema, data[:, :schema.n_conditions])
        t = _squash_dequantise(schema, data[:, schema.n_conditions:],
                               np.random.default_rng(seed))
        def std(a):
            s = a.std(axis=0)
            return np.where(s > 0, s, 1.0)  # constant columns (e.g. a flag never set) pass
        return cls(schema, c.mean(0), std(c), t.mean(0), std(t))

    def conditions(self, conditions: np.ndarray) -> np.ndarray:
        """File conditions [N, C] -> standardised model conditions [N, C] float32."""
        c = _condition_features(self.schema, conditions)
        return ((c - self.cond_mean) / self.cond_std).astype(np.float32)

    def targets(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """File targets [N, T] -> model targets [N, T] float32 (squashed, dequantised with
        noise drawn from `rng`, standardised)."""
        t = _squash_dequantise(self.schema, targets, rng)
        return ((t - self.target_mean) / self.target_std).astype(np.float32)

    def inverse_targets(self, model_targets: np.ndarray) -> np.ndarray:
        """Model targets [N, T] -> file target columns [N, T] float32: unstandardise,
        unsquash, round integers, threshold booleans at 0.5, apply the extraction clips."""
        y = np.asarray(model_targets, np.float64) * self.target_std + self.target_mean
        cols = []
        for j, col in enumerate(self.schema.targets):
            x = _unsquash(col, y[:, j])
            if col.kind == "int":
                x = np.round(x)
            elif col.kind == "bool":
                x = (x > 0.5).astype(np.float64)
            if col.clip is not None:
                x = np.clip(x, *col.clip)
            cols.append(x)
        return np.stack(cols, axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.schema.kind, "cond_mean": self.cond_mean.tolist(),
                "cond_std": self.cond_std.tolist(), "target_mean": self.target_mean.tolist(),
                "target_std": self.target_std.tolist()}

    @classmethod
    def from_dict(cls, d: dict, schema: Schema) -> ModelTransform:
        if d.get("kind") != schema.kind:
            raise DataError(f"preprocessing was fitted for {d.get('kind')!r}, not "
                            f"{schema.kind!r}")
        arr = {k: np.asarray(d[k], np.float64) for k in
               ("cond_mean", "cond_std", "target_mean", "target_std")}
        return cls(schema, **arr)


def make_transform_fn(transform: ModelTransform, rng: np.random.Generator):
    """rows [n, C + T] -> (model targets [n, T], model conditions [n, C]) for the reader;
    the dequantisation noise comes from `rng`."""
    n_c = transform.schema.n_conditions

    def fn(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transform.targets(rows[:, n_c:], rng), transform.conditions(rows[:, :n_c])

    return fn


def _condition_features(schema: Schema, conditions: np.ndarray) -> np.ndarray:
    c = np.asarray(conditions, np.float64).copy()
    for j, col in enumerate(schema.conditions):
        if col.model_log == "log":
            c[:, j] = np.log(np.maximum(c[:, j], 1e-30))
        elif col.model_log == "log1p":
            c[:, j] = np.log1p(np.maximum(c[:, j], 0.0))
    return c


def _squash_dequantise(schema: Schema, targets: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    t = np.asarray(targets, np.float64)
    cols = []
    for j, col in enumerate(schema.targets):
        x = _squash(col, t[:, j])
        if col.kind in ("int", "bool"):
            x = x + DEQUANTISATION_SIGMA * rng.standard_normal(len(x))
        cols.append(x)
    return np.stack(cols, axis=1)
