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
from .base import PRECISIONS, Flow, network_dtype_policy, register_family
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
    # "bfloat16": the conditioner networks compute in bfloat16 (weights stay float32); the
    # spline arithmetic, the log-determinants and the base density stay in float32.
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"flow 'precision' must be one of {list(PRECISIONS)}, got "
                              f"{self.precision!r}")
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
        # The split order concat([identity, transformed]), used by the flow's fused maps.
        self.split_order = np.concatenate([identity, transformed]).astype(np.int32)
        self.n_identity = len(identity)
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
            dtype=network_dtype_policy(config.precision, dtype))

    def _knots(self, x_id: tf.Tensor, condition: tf.Tensor, training: bool):
        # A bfloat16 conditioner's output is cast back: the spline runs in the flow's dtype.
        params = tf.cast(self.conditioner(x_id, condition, training=training), x_id.dtype)
        params = tf.reshape(params, [-1, self._n_t, self.settings.params_per_feature])
        return spline_knots(params * self._param_scale, self.settings)

    def _apply(self, x: tf.Tensor, condition: tf.Tensor, training: bool, spline_fn):
        x_id = tf.gather(x, self._identity, axis=1)
        x_t = tf.gather(x, self._transformed, axis=1)
        y_t, logdet = spline_fn(x_t, self._knots(x_id, condition, training))
        y = tf.gather(tf.concat([x_id, y_t], axis=1), self._unsplit, axis=1)
        return y, tf.reduce_sum(logdet, axis=1)

    def split_forward(self, x_split: tf.Tensor, condition: tf.Tensor, training: bool,
                      inverse: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """The coupling on an input already in split order [N, D] (identity features first):
        contiguous halves, so no gathers (whose gradients are scatters) on the hot path."""
        x_id, x_t = tf.split(x_split, [self.n_identity, self._n_t], axis=1)
        spline_fn = rq_spline_inverse if inverse else rq_spline_forward
        y_t, logdet = spline_fn(x_t, self._knots(x_id, condition, training))
        return tf.concat([x_id, y_t], axis=1), tf.reduce_sum(logdet, axis=1)

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
        # Input order of each step's linear part: natural first, then each coupling's split
        # order; the last entry (after the final LU) is the natural order again.
        natural = np.arange(d, dtype=np.int32)
        self._orders = ([natural] + [step[2].split_order for step in self.steps[:-1]]
                        + [natural])

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
    # The maps carry the state in the split order of the last coupling, and fold that order,
    # the next permutation, the LU map and the next coupling's split into one D x D matrix:
    # one small matmul per step instead of three gathers and a matmul (the gathers' gradients
    # are scatters, slow on the CPU). The result is the same function as applying the layers
    # one by one (`_layerwise_to_latent`, used by the tests).
    def _fused_linear(self, i: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, np.ndarray]:
        """(G [D, D], bias [D], log|det| scalar, output order) of step i's linear part acting
        on the state in the input order of step i: state @ G + bias = the LU output in the
        split order of coupling i (the natural order after the last step)."""
        perm, lu = self.steps[i][0], self.steps[i][1]
        in_order = self._orders[i]
        out_order = self._orders[i + 1]
        # The permuted input x[:, perm] is state[:, q] with q = position of perm in in_order.
        q = tf.gather(tf.constant(np.argsort(in_order).astype(np.int32)), perm.perm)
        weight_t, bias, logdet = lu.weight_t()
        g = tf.gather(tf.gather(weight_t, tf.math.invert_permutation(q), axis=0), out_order,
                      axis=1)
        return g, tf.gather(bias, out_order), logdet, q

    def _fused_inverse(self, i: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(G^-1 [D, D], bias in output order [D], log|det| of the forward map) of step i."""
        perm, lu = self.steps[i][0], self.steps[i][1]
        q = tf.gather(tf.constant(np.argsort(self._orders[i]).astype(np.int32)), perm.perm)
        inverse_t, bias, logdet = lu.inverse_t()
        out_order = self._orders[i + 1]
        # G = Wt[r, :][:, c] with r = q^-1, c = out_order  =>  G^-1 = Wt^-1[c, :][:, r].
        g_inv = tf.gather(tf.gather(inverse_t, out_order, axis=0),
                          tf.math.invert_permutation(q), axis=1)
        return g_inv, tf.gather(bias, out_order), logdet

    def to_latent(self, x, condition=None, training: bool = False
                  ) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x [N, D] -> latent z [N, D] and log|det dz/dx| [N]."""
        x, condition = self._inputs(x, condition)
        total = tf.zeros(tf.shape(x)[:1], self.dtype)
        for i, step in enumerate(self.steps):
            g, bias, logdet, _ = self._fused_linear(i)
            x = tf.matmul(x, g) + bias
            total += logdet
            if len(step) == 3:
                x, ld = step[2].split_forward(x, condition, training)
                total += ld
        return x, total

    def to_data(self, z, condition=None, training: bool = False
                ) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z [N, D] -> data x [N, D] and log|det dx/dz| [N]."""
        z, condition = self._inputs(z, condition)
        total = tf.zeros(tf.shape(z)[:1], self.dtype)
        for i in reversed(range(len(self.steps))):
            step = self.steps[i]
            if len(step) == 3:
                z, ld = step[2].split_forward(z, condition, training, inverse=True)
                total += ld
            g_inv, bias, logdet = self._fused_inverse(i)
            z = tf.matmul(z - bias, g_inv)
            total -= logdet
        return z, total

    def _layerwise_to_latent(self, x, condition=None, training: bool = False):
        """The reference: the layers applied one by one in the natural feature order."""
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

    def log_prob(self, x, condition=None, training: bool = False) -> tf.Tensor:
        """log p(x | condition) [N] in nats (of the units x is given in)."""
        z, log_det = self.to_latent(x, condition, training)
        return self.base_log_prob(z) + log_det

    def _training_log_prob(self, x, condition, training: bool) -> tf.Tensor:
        return self.log_prob(x, condition, training=training)
