"""Invertible preprocessing between physical KLM columns and the flow's standardised inputs.

Context: (hit_z, mu_hit_time, theta, log mu_momentum), each standardised by the training
split's mean and standard deviation. Target: photon time standardised the same way; its
Jacobian is the constant 1 / time_std, so log p(t) = log p(u) - log(time_std).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import CONTEXT_NAMES, KLMTable

_MOMENTUM = CONTEXT_NAMES.index("mu_momentum")


@dataclass(frozen=True)
class KLMPreprocessing:
    """Per-column affine maps (after log momentum); exact inverses `decode_*`."""

    context_mean: tuple[float, ...]
    context_std: tuple[float, ...]
    time_mean: float
    time_std: float

    @classmethod
    def fit(cls, table: KLMTable) -> KLMPreprocessing:
        """Statistics from (the training split of) `table`; constant columns get std 1."""
        ctx = _log_momentum(table.context)
        std = ctx.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        t_std = float(table.time.std()) or 1.0
        return cls(tuple(map(float, ctx.mean(axis=0))), tuple(map(float, std)),
                   float(table.time.mean()), t_std)

    def encode_context(self, context: np.ndarray) -> np.ndarray:
        """Physical context (N, 4) -> standardised (N, 4) float32."""
        u = (_log_momentum(context) - np.asarray(self.context_mean)) / np.asarray(self.context_std)
        return u.astype(np.float32)

    def encode_time(self, time: np.ndarray) -> np.ndarray:
        """Photon time [ns] (N,) -> standardised (N, 1) float32."""
        return ((np.asarray(time, np.float64) - self.time_mean) / self.time_std
                ).astype(np.float32)[:, None]

    def decode_time(self, u: np.ndarray) -> np.ndarray:
        """Standardised (N, 1) -> photon time [ns] (N,) float64."""
        return np.asarray(u, np.float64)[:, 0] * self.time_std + self.time_mean

    @property
    def log_abs_det_time(self) -> float:
        """log |du/dt| of `encode_time`; add to the flow's log p(u) for log p(t) per ns."""
        return -float(np.log(self.time_std))

    def to_dict(self) -> dict:
        return {"context_mean": list(self.context_mean), "context_std": list(self.context_std),
                "time_mean": self.time_mean, "time_std": self.time_std}

    @classmethod
    def from_dict(cls, d: dict) -> KLMPreprocessing:
        return cls(tuple(d["context_mean"]), tuple(d["context_std"]), float(d["time_mean"]),
                   float(d["time_std"]))


def _log_momentum(context: np.ndarray) -> np.ndarray:
    ctx = np.array(context, dtype=np.float64, copy=True)
    ctx[:, _MOMENTUM] = np.log(ctx[:, _MOMENTUM])
    return ctx
