"""The KLM timing model: a conditional spline flow plus its preprocessing, in physical units.

`log_prob` returns log p(photon_time | context) per ns; `sample_raw` draws one time per
context row without the physical-support constraint (see `sampling.sample_physical`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..errors import ConfigError, DataError
from ..flows.autoregressive_spline import (
    AutoregressiveSplineConfig,
    ConditionalAutoregressiveSplineFlow,
)
from ..flows.base import load_metadata
from .preprocessing import KLMPreprocessing


class KLMTimingModel:
    """Flow over the standardised photon time given the standardised context."""

    def __init__(self, flow: ConditionalAutoregressiveSplineFlow, prep: KLMPreprocessing):
        if flow.config.dim != 1 or flow.config.context_dim != 4:
            raise ConfigError(f"the KLM timing flow needs model.dim 1 and model.context_dim 4, "
                              f"got {flow.config.dim} and {flow.config.context_dim}")
        self.flow = flow
        self.prep = prep
        spec = [tf.TensorSpec([None, 1], tf.float32), tf.TensorSpec([None, 4], tf.float32)]
        self._log_prob = tf.function(lambda u, c: flow.log_prob(u, condition=c),
                                     input_signature=spec)
        self._inverse = tf.function(lambda z, c: flow.to_data(z, condition=c)[0],
                                    input_signature=spec)

    @classmethod
    def create(cls, config: AutoregressiveSplineConfig, prep: KLMPreprocessing
               ) -> KLMTimingModel:
        return cls(ConditionalAutoregressiveSplineFlow(config), prep)

    def log_prob(self, time: np.ndarray, context: np.ndarray, batch_size: int = 65536
                 ) -> np.ndarray:
        """log p(t | context) [log(1/ns)], shape (N,), for times (N,) and contexts (N, 4)."""
        u, c = self.prep.encode_time(time), self.prep.encode_context(context)
        out = [self._log_prob(u[i:i + batch_size], c[i:i + batch_size]).numpy()
               for i in range(0, len(u), batch_size)]
        return np.concatenate(out).astype(np.float64) + self.prep.log_abs_det_time

    def sample_raw(self, context: np.ndarray, rng: np.random.Generator,
                   batch_size: int = 65536) -> np.ndarray:
        """One untruncated time [ns] per context row, shape (N,); the base noise comes
        from `rng`, so a seeded generator gives a reproducible draw."""
        c = self.prep.encode_context(context)
        z = rng.standard_normal((len(c), 1)).astype(np.float32)
        out = [self._inverse(z[i:i + batch_size], c[i:i + batch_size]).numpy()
               for i in range(0, len(c), batch_size)]
        if not out:
            return np.zeros(0)
        return self.prep.decode_time(np.concatenate(out))

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """The model folder (flows/base.py) with the preprocessing in its metadata (atomic)."""
        return self.flow.save(path, {"preprocessing": self.prep.to_dict(), **(metadata or {})})

    @classmethod
    def load(cls, path: str | os.PathLike) -> KLMTimingModel:
        flow = ConditionalAutoregressiveSplineFlow.load(path)
        meta = load_metadata(path)
        if "preprocessing" not in meta:
            raise DataError(f"{path} is a flow but not a KLM timing model (no preprocessing)")
        return cls(flow, KLMPreprocessing.from_dict(meta["preprocessing"]))
