"""Conditional autoregressive rational-quadratic spline flow (a masked autoregressive flow with
neural-spline transforms, Durkan et al. 2019), Gaussian base.

Each of the `num_layers` layers transforms x (N, D) elementwise with a monotonic RQ spline
whose 3K - 1 parameters for feature d come from a MADE network of (x_<d, context): feature d
sees only earlier features (in that layer's order) and the whole context. Feature order is
reversed between layers so every feature conditions on every other one somewhere in the stack.
For D = 1 the masks cut the x input entirely and each layer's network is a plain MLP of the
context, which is the EIC KLM timing setting.

Directions (the flow contract of flows/base.py, family "autoregressive_spline"):
  to_latent(x, condition) -> (z, log|dz/dx|)   data -> latent, one network pass per layer
  to_data(z, condition)   -> (x, log|dx/dz|)   latent -> data, D network passes per layer
  log_prob(x, condition)  = log N(to_latent(x); 0, I) + log|dz/dx|
  sample(n, condition)    = to_data(z ~ N(0, I))

Shapes: x, z (N, D) float32; condition (N, context_dim) float32; log-dets and log_prob (N,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import tensorflow as tf

from ..errors import ConfigError
from .base import Flow, register_family
from .rq_spline import SplineSettings, apply_rq_spline, identity_slope_logit

_ACTIVATIONS = {"relu": tf.nn.relu, "gelu": tf.nn.gelu, "tanh": tf.tanh, "silu": tf.nn.silu}


@dataclass(frozen=True)
class AutoregressiveSplineConfig:
    """Architecture of the flow. Defaults are the EIC KLM notes' settings (12 layers, 1
    feature, context 4, 64 hidden units, 8 hidden layers)."""

    dim: int = 1
    context_dim: int = 4
    num_layers: int = 12
    hidden_units: int = 64
    hidden_layers: int = 8
    num_bins: int = 8
    tail_bound: float = 5.0
    activation: str = "relu"
    residual: bool = True  # skip connections between the equal-width hidden layers
    seed: int = 0  # weight initialisation

    def __post_init__(self) -> None:
        for name in ("dim", "num_layers", "hidden_units", "hidden_layers", "num_bins"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.context_dim) < 0:
            raise ConfigError(f"model.context_dim must be >= 0, got {self.context_dim}")
        if self.hidden_units < self.dim and self.dim > 1:
            raise ConfigError(f"model.hidden_units ({self.hidden_units}) must be >= dim "
                              f"({self.dim}) so every autoregressive degree has a unit")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"model.activation must be one of {sorted(_ACTIVATIONS)}, "
                              f"got {self.activation!r}")
        if not self.tail_bound > 0:
            raise ConfigError(f"model.tail_bound must be > 0, got {self.tail_bound}")

    @classmethod
    def from_dict(cls, d: dict) -> AutoregressiveSplineConfig:
        """Build from a dict; unknown keys raise ConfigError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def made_masks(dim: int, context_dim: int, hidden_units: int, hidden_layers: int,
               params_per_feature: int) -> list[np.ndarray]:
    """MADE connectivity masks (1 = connected) for inputs [x (dim) | context], hidden layers
    and outputs laid out as (dim, params_per_feature) flattened feature-major.

    Degrees: x_d has degree d (1..dim), context 0, hidden units cycle through 0..dim-1,
    output block d has degree d. Input->hidden and hidden->hidden connect when the degree does
    not decrease; hidden->output block d connects when the hidden degree is < d. So output d
    depends on x_<d and the context only."""
    in_deg = np.concatenate([np.arange(1, dim + 1), np.zeros(context_dim, dtype=int)])
    hid_deg = np.arange(hidden_units) % dim  # 0..dim-1; all 0 (context only) when dim == 1
    out_deg = np.repeat(np.arange(1, dim + 1), params_per_feature)
    masks = [(in_deg[:, None] <= hid_deg[None, :]).astype(np.float32)]
    for _ in range(hidden_layers - 1):
        masks.append((hid_deg[:, None] <= hid_deg[None, :]).astype(np.float32))
    masks.append((hid_deg[:, None] < out_deg[None, :]).astype(np.float32))
    return masks


class MADESplineConditioners(tf.Module):
    """The masked MLPs of all `num_layers` layers, weights stacked on a leading layer axis
    (few large variables: a cheaper optimizer step than one variable per layer and depth).

    `(x (N, D), context (N, C), weights of layer l from per_layer()) -> spline parameters
    (N, D, 3K - 1)`, output d depending on x_<d and the context only."""

    def __init__(self, config: AutoregressiveSplineConfig, name: str | None = None,
                 dtype: tf.DType = tf.float32):
        super().__init__(name=name)
        self.config = config
        self.params_per_feature = 3 * config.num_bins - 1
        masks = made_masks(config.dim, config.context_dim, config.hidden_units,
                           config.hidden_layers, self.params_per_feature)
        self.masks = [tf.constant(m, dtype) for m in masks]
        rng = np.random.default_rng(config.seed)
        n_layers = config.num_layers
        self.kernels, self.biases = [], []
        for i, m in enumerate(masks):
            fan_in, fan_out = m.shape
            if i == len(masks) - 1:
                # Zero output weights and identity-slope biases: every layer starts as the
                # identity map, so the untrained flow is exactly the Gaussian base.
                w = np.zeros((n_layers, fan_in, fan_out), np.float32)
                b = np.zeros((n_layers, config.dim, self.params_per_feature), np.float32)
                b[..., 2 * config.num_bins:] = identity_slope_logit()
                b = b.reshape(n_layers, -1)
            else:
                # He-uniform scaled by the real (unmasked) fan-in of each unit.
                limit = np.sqrt(6.0 / np.maximum(m.sum(axis=0), 1.0))
                if config.residual and i > 0:
                    limit = limit / np.sqrt(config.hidden_layers)  # keep residual sums tame
                w = (rng.uniform(-1.0, 1.0, (n_layers, fan_in, fan_out)) * limit
                     ).astype(np.float32)
                b = np.zeros((n_layers, fan_out), np.float32)
            self.kernels.append(tf.Variable(tf.constant(w, dtype), name=f"kernel_{i}"))
            self.biases.append(tf.Variable(tf.constant(b, dtype), name=f"bias_{i}"))

    def per_layer(self) -> list[list[tuple[tf.Tensor, tf.Tensor]]]:
        """Masked (kernel, bias) pairs of each layer; unstacked once per pass so the
        gradient is one stack op per variable, not one scatter per layer."""
        ks = [tf.unstack(k * m[None], axis=0) for k, m in zip(self.kernels, self.masks,
                                                              strict=True)]
        bs = [tf.unstack(b, axis=0) for b in self.biases]
        return [[(ks[j][i], bs[j][i]) for j in range(len(ks))]
                for i in range(self.config.num_layers)]

    def __call__(self, x: tf.Tensor, context: tf.Tensor,
                 weights: list[tuple[tf.Tensor, tf.Tensor]]) -> tf.Tensor:
        """Spline parameters (N, D, 3K - 1) with one layer's `per_layer()` weights."""
        act = _ACTIVATIONS[self.config.activation]
        h = tf.concat([x, context], axis=-1) if self.config.context_dim else x
        h = act(tf.matmul(h, weights[0][0]) + weights[0][1])
        for k, b in weights[1:-1]:
            update = act(tf.matmul(h, k) + b)
            h = h + update if self.config.residual else update
        out = tf.matmul(h, weights[-1][0]) + weights[-1][1]
        return tf.reshape(out, [-1, self.config.dim, self.params_per_feature])


@register_family
class ConditionalAutoregressiveSplineFlow(Flow):
    """Stack of conditional autoregressive RQ-spline layers over a standard normal base.

    All public methods take `condition=` (N, context_dim); use context_dim = 0 and
    condition=None for an unconditional flow. `dtype`: float32 (default) or float64 (exactness
    checks) for the weights and inputs."""

    family = "autoregressive_spline"
    empty_condition_tensor = True

    def __init__(self, config: AutoregressiveSplineConfig | None = None,
                 name: str | None = None, dtype: tf.DType | str = tf.float32):
        super().__init__(name=name)
        self.config = config or AutoregressiveSplineConfig()
        self.dtype = tf.as_dtype(dtype)
        self.spline = SplineSettings(num_bins=self.config.num_bins,
                                     tail_bound=self.config.tail_bound)
        self.conditioners = MADESplineConditioners(self.config, name="made", dtype=self.dtype)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def condition_dim(self) -> int:
        return self.config.context_dim

    @classmethod
    def from_config_dict(cls, config: dict, dtype: str = "float32"
                         ) -> ConditionalAutoregressiveSplineFlow:
        return cls(AutoregressiveSplineConfig.from_dict(config), dtype=dtype)

    # -- transforms ---------------------------------------------------------------------
    def to_latent(self, x, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x (N, D) -> latent z (N, D) and log|det dz/dx| (N,)."""
        x, c = self._inputs(x, condition)
        log_det = tf.zeros(tf.shape(x)[:1], x.dtype)
        weights = self.conditioners.per_layer()
        for i in range(self.config.num_layers):
            if i > 0:
                x = tf.reverse(x, axis=[-1])
            x, ld = apply_rq_spline(x, self.conditioners(x, c, weights[i]), self.spline)
            log_det += tf.reduce_sum(ld, axis=-1)
        return x, log_det

    def to_data(self, z, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z (N, D) -> data x (N, D) and log|det dx/dz| (N,). Each layer needs D
        sequential network passes (pass d fixes feature d)."""
        z, c = self._inputs(z, condition)
        log_det = tf.zeros(tf.shape(z)[:1], z.dtype)
        weights = self.conditioners.per_layer()
        for i in reversed(range(self.config.num_layers)):
            x = tf.zeros_like(z)
            for _ in range(self.config.dim):
                x, ld = apply_rq_spline(z, self.conditioners(x, c, weights[i]), self.spline,
                                        inverse=True)
            log_det += tf.reduce_sum(ld, axis=-1)
            z = tf.reverse(x, axis=[-1]) if i > 0 else x
        return z, log_det
