"""Conditional rational-quadratic spline coupling flow: the FlashSim model, in TensorFlow.

    data x -> [permutation -> LU linear -> RQ-spline coupling] x num_flow_steps
           -> permutation -> LU linear -> z ~ N(0, I)

Coupling step i transforms the even features when i is even and the odd ones when i is odd
(nflows' alternating mask); a `ResidualConditioner` sees the untransformed half concatenated
with the context (the condition) and predicts 3K - 1 spline parameters per transformed feature.
Unnormalised widths and heights are divided by sqrt(hidden), as nflows does, so that a freshly
initialised network gives near-uniform bins.

Direction convention: `inverse(x)` maps data to latent (used by `log_prob`), `forward(z)` maps
latent to data (used by `sample`); both return (outputs [N, D], log|det J| [N]) of the map they
apply. Every public method takes the condition as `condition=` [N, C] (float32).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..errors import ConfigError, DataError, UserError
from ..fileio import existing_dir, new_tmp_dir, replace_dir
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
        self._k = config.num_bins
        self._width_scale = 1.0 / math.sqrt(config.hidden)
        self.conditioner = ResidualConditioner(
            len(identity), config.context_features, self._n_t * self.settings.params_per_feature,
            config.hidden, config.num_blocks, config.activation, config.batch_norm,
            config.dropout, seed=config.seed * 100003 + 1009 * step, name="conditioner",
            dtype=dtype.name)

    def _knots(self, x_id: tf.Tensor, condition: tf.Tensor, training: bool):
        params = self.conditioner(x_id, condition, training=training)
        params = tf.reshape(params, [-1, self._n_t, self.settings.params_per_feature])
        k = self._k
        params = tf.concat([params[..., :2 * k] * self._width_scale, params[..., 2 * k:]], -1)
        return spline_knots(params, self.settings)

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


class SplineCouplingFlow(tf.Module):
    """Conditional density p(x | condition) over x in R^D with a standard Normal base.

    `dtype` (float32 by default; float64 for exactness checks) applies to weights and inputs.
    """

    def __init__(self, config: SplineFlowConfig | dict, name: str | None = None,
                 dtype: tf.DType = tf.float32):
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

    # ---- maps -------------------------------------------------------------------------------
    def _check(self, x: tf.Tensor, condition: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, self.dtype)
        condition = tf.cast(condition, self.dtype)
        if x.shape.rank != 2 or (x.shape[1] is not None and x.shape[1] != self.config.features):
            raise DataError(f"flow input must be [N, {self.config.features}], got {x.shape}")
        if condition.shape.rank != 2 or (condition.shape[1] is not None
                                         and condition.shape[1] != self.config.context_features):
            raise DataError(f"condition must be [N, {self.config.context_features}], "
                            f"got {condition.shape}")
        return x, condition

    def inverse(self, x, condition, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x [N, D] -> latent z [N, D] and log|det dz/dx| [N]."""
        x, condition = self._check(x, condition)
        total = tf.zeros(tf.shape(x)[:1], self.dtype)
        for step in self.steps:
            for layer in step:
                if isinstance(layer, SplineCoupling):
                    x, ld = layer.to_noise(x, condition, training)
                else:
                    x, ld = layer.to_noise(x)
                total += ld
        return x, total

    def forward(self, z, condition, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z [N, D] -> data x [N, D] and log|det dx/dz| [N]."""
        z, condition = self._check(z, condition)
        total = tf.zeros(tf.shape(z)[:1], self.dtype)
        for step in reversed(self.steps):
            for layer in reversed(step):
                if isinstance(layer, SplineCoupling):
                    z, ld = layer.to_data(z, condition, training)
                else:
                    z, ld = layer.to_data(z)
                total += ld
        return z, total

    def log_prob(self, x, condition, training: bool = False) -> tf.Tensor:
        """log p(x | condition) [N] in nats (of the units x is given in)."""
        z, logdet = self.inverse(x, condition, training)
        base = -0.5 * tf.reduce_sum(z * z, axis=1) - 0.5 * self.config.features * math.log(
            2 * math.pi)
        return base + logdet

    def sample(self, condition, seed: int | None = None) -> tf.Tensor:
        """One draw x [N, D] per condition row [N, C] (repeat rows to upsample)."""
        condition = tf.cast(condition, self.dtype)
        shape = [tf.shape(condition)[0], self.config.features]
        if seed is None:
            z = tf.random.normal(shape, dtype=self.dtype)
        else:
            z = tf.random.stateless_normal(shape, seed=[int(seed), 0], dtype=self.dtype)
        return self.forward(z, condition)[0]

    # ---- bookkeeping ------------------------------------------------------------------------
    def num_parameters(self) -> int:
        """Trainable parameters (batch-norm moving statistics not counted)."""
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json and the weights to folder `path`, atomically (old copy kept until
        the new one is complete)."""
        tmp = new_tmp_dir(path)
        meta = {**asdict(self.config), "dtype": self.dtype.name}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        tf.train.Checkpoint(flow=self).write(str(tmp / "weights"))
        return replace_dir(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SplineCouplingFlow:
        """Rebuild a flow written by `save`; UserError naming the folder when it is not one."""
        folder = existing_dir(path)
        if folder is None or not (folder / "config.json").is_file():
            raise UserError(f"no saved flow at {path} (expected {path}/config.json)")
        try:
            config = json.loads((folder / "config.json").read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{folder}/config.json is not valid JSON: {exc}") from None
        dtype = config.pop("dtype", "float32")
        flow = cls(SplineFlowConfig.from_dict(config), dtype=dtype)
        status = tf.train.Checkpoint(flow=flow).read(str(folder / "weights"))
        status.assert_existing_objects_matched().expect_partial()
        return flow
