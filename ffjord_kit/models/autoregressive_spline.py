"""Conditional autoregressive rational-quadratic spline flow (a masked autoregressive flow with
neural-spline transforms, Durkan et al. 2019), Gaussian base.

Each of the `num_layers` layers transforms x (N, D) elementwise with a monotonic RQ spline
whose 3K - 1 parameters for feature d come from a MADE network of (x_<d, context): feature d
sees only earlier features (in that layer's order) and the whole context. Feature order is
reversed between layers so every feature conditions on every other one somewhere in the stack.
For D = 1 the masks cut the x input entirely and each layer's network is a plain MLP of the
context, which is the EIC KLM timing setting.

Directions:
  forward(x, condition)  -> (z, log|dz/dx|)   data -> latent, one network pass per layer
  inverse(z, condition)  -> (x, log|dx/dz|)   latent -> data, D network passes per layer
  log_prob(x, condition) = log N(forward(x); 0, I) + log|dz/dx|
  sample(condition)      = inverse(z ~ N(0, I))

Shapes: x, z (N, D) float32; condition (N, context_dim) float32; log-dets and log_prob (N,).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..errors import ConfigError, DataError
from ..fileio import existing_dir, new_tmp_dir, replace_dir, write_json
from .rq_spline import SplineSettings, apply_rq_spline, identity_slope_logit

_LOG_2PI = math.log(2.0 * math.pi)
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

    def __init__(self, config: AutoregressiveSplineConfig, name: str | None = None):
        super().__init__(name=name)
        self.config = config
        self.params_per_feature = 3 * config.num_bins - 1
        masks = made_masks(config.dim, config.context_dim, config.hidden_units,
                           config.hidden_layers, self.params_per_feature)
        self.masks = [tf.constant(m) for m in masks]
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
            self.kernels.append(tf.Variable(w, name=f"kernel_{i}"))
            self.biases.append(tf.Variable(b, name=f"bias_{i}"))

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


class ConditionalAutoregressiveSplineFlow(tf.Module):
    """Stack of conditional autoregressive RQ-spline layers over a standard normal base.

    All public methods take `condition=` (N, context_dim); use context_dim = 0 and
    condition=None for an unconditional flow."""

    def __init__(self, config: AutoregressiveSplineConfig | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.config = config or AutoregressiveSplineConfig()
        self.spline = SplineSettings(num_bins=self.config.num_bins,
                                     tail_bound=self.config.tail_bound)
        self.conditioners = MADESplineConditioners(self.config, name="made")

    # -- input checks -------------------------------------------------------------------
    def _prepare(self, x, condition) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape.rank != 2 or (x.shape[-1] is not None and x.shape[-1] != self.config.dim):
            raise DataError(f"flow input must have shape (N, {self.config.dim}), got {x.shape}")
        if self.config.context_dim == 0:
            if condition is not None:
                raise DataError("this flow is unconditional (context_dim 0): pass condition=None")
            return x, tf.zeros([tf.shape(x)[0], 0], tf.float32)
        if condition is None:
            raise DataError(f"condition= is required, shape (N, {self.config.context_dim})")
        c = tf.convert_to_tensor(condition, tf.float32)
        if c.shape.rank != 2 or (c.shape[-1] is not None
                                 and c.shape[-1] != self.config.context_dim):
            raise DataError(f"condition must have shape (N, {self.config.context_dim}), "
                            f"got {c.shape}")
        if x.shape[0] is not None and c.shape[0] is not None and x.shape[0] != c.shape[0]:
            raise DataError(f"condition has {c.shape[0]} rows but the input has {x.shape[0]}")
        return x, c

    # -- transforms ---------------------------------------------------------------------
    def forward(self, x, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x (N, D) -> latent z (N, D) and log|det dz/dx| (N,)."""
        x, c = self._prepare(x, condition)
        log_det = tf.zeros(tf.shape(x)[:1], x.dtype)
        weights = self.conditioners.per_layer()
        for i in range(self.config.num_layers):
            if i > 0:
                x = tf.reverse(x, axis=[-1])
            x, ld = apply_rq_spline(x, self.conditioners(x, c, weights[i]), self.spline)
            log_det += tf.reduce_sum(ld, axis=-1)
        return x, log_det

    def inverse(self, z, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z (N, D) -> data x (N, D) and log|det dx/dz| (N,). Each layer needs D
        sequential network passes (pass d fixes feature d)."""
        z, c = self._prepare(z, condition)
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

    def log_prob(self, x, condition=None) -> tf.Tensor:
        """log p(x | condition) in nats, shape (N,)."""
        z, log_det = self.forward(x, condition)
        base = -0.5 * tf.reduce_sum(z * z, axis=-1) - 0.5 * self.config.dim * _LOG_2PI
        return base + log_det

    def sample(self, condition=None, num_samples: int | None = None,
               seed: int | tf.Tensor | None = None) -> tf.Tensor:
        """One sample per condition row (N, D); or `num_samples` rows when unconditional.
        `seed` (int or a shape-[2] stateless seed tensor) makes the draw reproducible."""
        if condition is not None:
            n = tf.shape(tf.convert_to_tensor(condition))[0]
        elif num_samples is not None:
            n = num_samples
        else:
            raise DataError("sample needs condition= or num_samples")
        shape = tf.stack([n, self.config.dim]) if isinstance(n, tf.Tensor) else [n, self.config.dim]
        if seed is None:
            z = tf.random.normal(shape)
        else:
            s = tf.constant([int(seed), 0], tf.int64) if isinstance(seed, int) else seed
            z = tf.random.stateless_normal(shape, seed=s)
        return self.inverse(z, condition)[0]

    # -- persistence --------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """All variables by stable name ('kernel_1': (num_layers, in, out), ...)."""
        made = self.conditioners
        out = {f"kernel_{j}": k.numpy() for j, k in enumerate(made.kernels)}
        out.update({f"bias_{j}": b.numpy() for j, b in enumerate(made.biases)})
        return out

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Assign variables from `get_weights` output; shape or name mismatch -> DataError."""
        made = self.conditioners
        pairs = [(f"kernel_{j}", k) for j, k in enumerate(made.kernels)]
        pairs += [(f"bias_{j}", b) for j, b in enumerate(made.biases)]
        for key, var in pairs:
            if key not in weights:
                raise DataError(f"saved weights lack {key!r}")
            if tuple(weights[key].shape) != tuple(var.shape):
                raise DataError(f"saved weight {key!r} has shape {weights[key].shape}, "
                                f"model expects {tuple(var.shape)}")
        for key, var in pairs:
            var.assign(weights[key])

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write config.json (architecture + `metadata`) and weights.npz into folder `path`,
        atomically (a kill leaves the previous save intact)."""
        tmp = new_tmp_dir(path)
        write_json(tmp / "config.json", {"model": self.config.to_dict(),
                                         "metadata": metadata or {}})
        np.savez(tmp / "weights.npz", **self.get_weights())
        return replace_dir(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConditionalAutoregressiveSplineFlow:
        """Rebuild a flow saved with `save`."""
        folder = existing_dir(path)
        if folder is None or not (folder / "config.json").is_file():
            raise DataError(f"no saved flow at {path} (expected config.json and weights.npz)")
        cfg = json.loads((folder / "config.json").read_text())
        flow = cls(AutoregressiveSplineConfig.from_dict(cfg["model"]))
        with np.load(folder / "weights.npz") as npz:
            flow.set_weights({k: npz[k] for k in npz.files})
        return flow

    @staticmethod
    def load_metadata(path: str | os.PathLike) -> dict:
        """The `metadata` dict stored by `save`."""
        folder = existing_dir(path)
        if folder is None or not (folder / "config.json").is_file():
            raise DataError(f"no saved flow at {path}")
        return json.loads((folder / "config.json").read_text()).get("metadata", {})
