"""Conditional rational-quadratic spline coupling flow: the FlashSim model, in TensorFlow.

    data x -> [permutation -> LU linear -> RQ-spline coupling] x num_flow_steps
           -> permutation -> LU linear -> z ~ N(0, I)

Coupling step i transforms the even features when i is even and the odd ones when i is odd
(nflows' alternating mask); a `ResidualConditioner` sees the untransformed half concatenated
with the context (the condition) and predicts 3K - 1 spline parameters per transformed feature.
Unnormalised widths and heights are divided by sqrt(hidden), as nflows does, so that a freshly
initialised network gives near-uniform bins.

It implements the flow contract of `flows/base.py` (family "spline_coupling"): `to_latent(x)`
maps data to latent (used by `log_prob`), `to_data(z)` latent to data (used by `sample`); both
return (outputs [N, D], log|det J| [N]) of the map they apply. Every public method takes the
condition as `condition=` [N, C].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import tensorflow as tf

from ..errors import ConfigError
from .base import Flow, register_family
from .linear_lu import FixedPermutation, LULinear
from .residual_conditioner import ResidualConditioner
from .rq_spline import SplineSettings, rq_spline_forward, rq_spline_inverse, spline_knots


@dataclass(frozen=True)
class SplineFlowConfig:
    """Architecture of a SplineCouplingFlow (all of it: saved next to the weights)."""

    features: int
    context_features: int
    num_flow_steps: int
    hidden: int = 64
    num_blocks: int = 2
    num_bins: int = 8
    tail_bound: float = 1.0
    min_bin_width: float = 1e-3
    min_bin_height: float = 1e-3
    min_derivative: float = 1e-3
    activation: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features < 2:
            raise ConfigError(f"flow 'features' must be >= 2 for a coupling flow, got "
                              f"{self.features}")
        if self.context_features < 0 or self.num_flow_steps < 1 or self.hidden < 1:
            raise ConfigError("flow 'context_features' >= 0, 'num_flow_steps' >= 1 and "
                              "'hidden' >= 1 are required")
        try:
            self.spline_settings()
        except ValueError as exc:
            raise ConfigError(f"flow spline settings: {exc}") from None

    def spline_settings(self) -> SplineSettings:
        return SplineSettings(self.num_bins, self.tail_bound, self.min_bin_width,
                              self.min_bin_height, self.min_derivative)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SplineFlowConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown flow setting(s) {unknown}; known: {sorted(known)}")
        missing = [k for k in ("features", "context_features", "num_flow_steps") if k not in d]
        if missing:
            raise ConfigError(f"flow config is missing {missing}")
        return cls(**d)


class SplineCoupling(tf.Module):
    """One conditional RQ-spline coupling on an alternating mask (see module docstring)."""

    def __init__(self, config: SplineFlowConfig, step: int, name: str | None = None,
                 dtype: tf.DType = tf.float32):
        super().__init__(name=name)
        d = config.features
        transformed = np.arange(step % 2, d, 2)
        identity = np.setdiff1d(np.arange(d), transformed)
        self._transformed = tf.constant(transformed, tf.int32)
        self._identity = tf.constant(identity, tf.int32)
        # Position of each original feature in concat([identity, transformed]).
        self._unsplit = tf.constant(np.argsort(np.concatenate([identity, transformed])), tf.int32)
        self.settings = config.spline_settings()
        self._n_t = len(transformed)
        # Widths and heights scaled by 1/sqrt(hidden), slopes by 1: one multiply, no slices.
        k = config.num_bins
        self._param_scale = tf.constant(np.r_[np.full(2 * k, 1.0 / math.sqrt(config.hidden)),
                                              np.ones(k - 1)], dtype)
        self.conditioner = ResidualConditioner(
            len(identity), config.context_features, self._n_t * self.settings.params_per_feature,
            config.hidden, config.num_blocks, config.activation, config.batch_norm,
            config.dropout, seed=config.seed * 100003 + 1009 * step, name="conditioner",
            dtype=dtype.name)

    def _knots(self, x_id: tf.Tensor, condition: tf.Tensor, training: bool):
        params = self.conditioner(x_id, condition, training=training)
        params = tf.reshape(params, [-1, self._n_t, self.settings.params_per_feature])
        return spline_knots(params * self._param_scale, self.settings)

    def _apply(self, x: tf.Tensor, condition: tf.Tensor, training: bool, spline_fn):
        x_id = tf.gather(x, self._identity, axis=1)
        x_t = tf.gather(x, self._transformed, axis=1)
        y_t, logdet = spline_fn(x_t, self._knots(x_id, condition, training))
        y = tf.gather(tf.concat([x_id, y_t], axis=1), self._unsplit, axis=1)
        return y, tf.reduce_sum(logdet, axis=1)

    def to_noise(self, x, condition, training=False):
        return self._apply(x, condition, training, rq_spline_forward)

    def to_data(self, z, condition, training=False):
        return self._apply(z, condition, training, rq_spline_inverse)


@register_family
class SplineCouplingFlow(Flow):
    """Conditional density p(x | condition) over x in R^D with a standard Normal base.

    `dtype` (float32 by default; float64 for exactness checks) applies to weights and inputs.
    """

    family = "spline_coupling"
    empty_condition_tensor = True

    def __init__(self, config: SplineFlowConfig | dict, name: str | None = None,
                 dtype: tf.DType | str = tf.float32):
        super().__init__(name=name or "spline_coupling_flow")
        if isinstance(config, dict):
            config = SplineFlowConfig.from_dict(config)
        self.config = config
        self.dtype = tf.as_dtype(dtype)
        d, seed = config.features, config.seed
        self.steps = []
        for i in range(config.num_flow_steps):
            self.steps.append([FixedPermutation(d, seed + 1000 * i, name=f"perm{i}"),
                               LULinear(d, name=f"lu{i}", dtype=self.dtype),
                               SplineCoupling(config, i, name=f"coupling{i}", dtype=self.dtype)])
        self.steps.append([FixedPermutation(d, seed + 1000 * config.num_flow_steps,
                                            name="perm_final"),
                           LULinear(d, name="lu_final", dtype=self.dtype)])

    @property
    def dim(self) -> int:
        return self.config.features

    @property
    def condition_dim(self) -> int:
        return self.config.context_features

    @classmethod
    def from_config_dict(cls, config: dict, dtype: str = "float32") -> SplineCouplingFlow:
        return cls(SplineFlowConfig.from_dict(config), dtype=dtype)

    # ---- maps -------------------------------------------------------------------------------
    def to_latent(self, x, condition=None, training: bool = False
                  ) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x [N, D] -> latent z [N, D] and log|det dz/dx| [N]."""
        x, condition = self._inputs(x, condition)
        total = tf.zeros(tf.shape(x)[:1], self.dtype)
        for step in self.steps:
            for layer in step:
                if isinstance(layer, SplineCoupling):
                    x, ld = layer.to_noise(x, condition, training)
                else:
                    x, ld = layer.to_noise(x)
                total += ld
        return x, total

    def to_data(self, z, condition=None, training: bool = False
                ) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z [N, D] -> data x [N, D] and log|det dx/dz| [N]."""
        z, condition = self._inputs(z, condition)
        total = tf.zeros(tf.shape(z)[:1], self.dtype)
        for step in reversed(self.steps):
            for layer in reversed(step):
                if isinstance(layer, SplineCoupling):
                    z, ld = layer.to_data(z, condition, training)
                else:
                    z, ld = layer.to_data(z)
                total += ld
        return z, total

    def log_prob(self, x, condition=None, training: bool = False) -> tf.Tensor:
        """log p(x | condition) [N] in nats (of the units x is given in)."""
        z, log_det = self.to_latent(x, condition, training)
        return self.base_log_prob(z) + log_det

    def _training_log_prob(self, x, condition, training: bool) -> tf.Tensor:
        return self.log_prob(x, condition, training=training)
