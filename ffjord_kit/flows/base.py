"""The flow contract every family implements, the model folder format and `load_flow`.

    flow.dim, flow.condition_dim                    # D and C (C = 0: unconditional)
    z, log_det = flow.to_latent(x, condition=c)     # data -> latent, log|det dz/dx|, (N, D), (N,)
    x, log_det = flow.to_data(z, condition=c)       # latent -> data, log|det dx/dz|
    flow.log_prob(x, condition=c)                   # (N,) nats
    flow.sample(n, condition=c, seed=1)             # (n, D); c of shape (n, C) or (C,)
    loss, aux = flow.loss(x, condition=c)           # what the one Trainer minimises
    flow.save("runs/model"); load_flow("runs/model")  # any family

A model folder holds `flow.json` ({"family", "config", "dtype", "metadata"}) and a
`tf.train.Checkpoint` of the flow (`weights.*`); `metadata` carries what the physics layer
needs to use the model (its preprocessing, its data schema). Families register themselves
with `@register_family` and are imported on demand by `load_flow`.

Conditions are always `condition=`; a condition of the wrong shape or dtype, or one given to an
unconditional flow, raises `ConditionError` (one line) in every family.
"""

from __future__ import annotations

import abc
import importlib
import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
import tf_keras

from ..errors import ConditionError, ConfigError, UserError
from ..fileio import existing_dir, new_tmp_dir, replace_dir, write_json

FLOW_FILE = "flow.json"
_LOG_2PI = math.log(2.0 * math.pi)

# family name -> module that defines it (imported by load_flow on demand)
_FAMILY_MODULES = {
    "continuous": "ffjord_kit.flows.continuous",
    "spline_coupling": "ffjord_kit.flows.spline_coupling",
    "autoregressive_spline": "ffjord_kit.flows.autoregressive_spline",
}
FAMILIES: dict[str, type[Flow]] = {}


def register_family(cls: type[Flow]) -> type[Flow]:
    """Class decorator: make `cls` (with a unique `family` name) loadable by `load_flow`."""
    FAMILIES[cls.family] = cls
    _FAMILY_MODULES.setdefault(cls.family, cls.__module__)
    return cls


# Precision of a flow's networks (its `precision` setting). "bfloat16" is Keras' mixed policy:
# weights, optimizer state and checkpoints stay float32 (a model trained in one precision loads
# in the other), the networks' matmuls and activations run in bfloat16; what the flow computes
# around them (splines, ODE state, log-determinants, base density) stays in the flow's dtype.
PRECISIONS = ("float32", "bfloat16")


def network_dtype_policy(precision: str, dtype: tf.DType = tf.float32):
    """The Keras dtype (policy) for a flow's networks: `dtype`'s name, or "mixed_bfloat16".

    Raises ConfigError for an unknown precision, or bfloat16 with a flow dtype other than
    float32 (float64 flows exist for exactness checks; mixing them with bfloat16 is a mistake).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    dtype = tf.as_dtype(dtype)
    if precision == "float32":
        return dtype.name
    if dtype != tf.float32:
        raise ConfigError(f"precision 'bfloat16' needs a float32 flow, not {dtype.name}")
    return tf_keras.mixed_precision.Policy("mixed_bfloat16")


class Flow(tf.Module, abc.ABC):
    """A normalizing flow p(x | condition) over R^D with a standard Normal base.

    Subclasses set `family`, keep their architecture in `self.config` (a dataclass with
    `to_dict`) and implement `to_latent`, `to_data` and `from_config_dict`.
    """

    family: ClassVar[str] = "base"
    dtype: tf.DType = tf.float32
    # Networks that concatenate the condition want an empty (N, 0) one when C = 0, not None.
    empty_condition_tensor: ClassVar[bool] = False

    # ------------------------------------------------------------------ what a family defines
    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """D, the number of features of x."""

    @property
    @abc.abstractmethod
    def condition_dim(self) -> int:
        """C, the number of condition features (0: unconditional)."""

    @abc.abstractmethod
    def to_latent(self, x, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Data x (N, D) -> latent z (N, D) and log|det dz/dx| (N,)."""

    @abc.abstractmethod
    def to_data(self, z, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Latent z (N, D) -> data x (N, D) and log|det dx/dz| (N,)."""

    @classmethod
    @abc.abstractmethod
    def from_config_dict(cls, config: dict, dtype: str = "float32") -> Flow:
        """A new (untrained) flow of the architecture `config` (as `config_dict()` wrote it)."""

    def config_dict(self) -> dict[str, Any]:
        """The architecture as plain JSON types (saved in flow.json, fingerprinted on resume)."""
        return self.config.to_dict()

    # ------------------------------------------------------------------ shared behaviour
    def base_log_prob(self, z: tf.Tensor) -> tf.Tensor:
        """log N(z; 0, I), shape (N,)."""
        return -0.5 * tf.reduce_sum(z * z, axis=-1) - 0.5 * self.dim * _LOG_2PI

    def log_prob(self, x, condition=None) -> tf.Tensor:
        """log p(x | condition) in nats (of the units x is given in), shape (N,)."""
        z, log_det = self.to_latent(x, condition)
        return self.base_log_prob(z) + log_det

    def sample(self, n: int, condition=None, seed: int | None = None) -> tf.Tensor:
        """n draws x (n, D) from p(x | condition); the same integer seed gives the same draws.

        condition: (n, C) one row per draw, or (C,) / a scalar for C = 1, repeated n times.
        """
        z = np.random.default_rng(seed).standard_normal((int(n), self.dim))
        return self._sample_from(tf.constant(z, self.dtype), condition)

    def _sample_from(self, z: tf.Tensor, condition) -> tf.Tensor:
        """Latent -> data without the log-determinant, where a family can skip it."""
        return self.to_data(z, condition)[0]

    #: training objectives `loss` accepts (the continuous flows add flow matching)
    objectives: ClassVar[tuple[str, ...]] = ("max_likelihood",)

    def loss(self, x, condition=None, training: bool = True,
             **options: float) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The training objective (mean NLL in nats) and its parts {"nll": ...}.

        `training` switches batch norm and dropout to their training behaviour. Families with
        extra terms (the continuous flows' RNODE weights) take them as keyword `options`.
        """
        if any(options.values()):
            raise UserError(f"{self.family} flows have no loss options "
                            f"{sorted(k for k, v in options.items() if v)}")
        nll = -tf.reduce_mean(self._training_log_prob(x, condition, training))
        return nll, {"nll": nll}

    def _training_log_prob(self, x, condition, training: bool) -> tf.Tensor:
        return self.log_prob(x, condition)

    @property
    def nfe(self) -> int:
        """Network evaluations since `reset_nfe` (one pass per call for discrete flows: 0)."""
        return 0

    def reset_nfe(self) -> None:
        return None

    def weight_variables(self) -> list[tf.Variable]:
        """Variables that define the model (weights and batch-norm statistics), fixed order:
        what early stopping keeps and restores."""
        return list(self.variables)

    def num_parameters(self) -> int:
        """Trainable parameters (batch-norm moving statistics not counted)."""
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    # ------------------------------------------------------------------ inputs
    def check_input(self, x, what: str = "input") -> tf.Tensor:
        """x as a (N, D) tensor of `self.dtype`; ConditionError naming the shape otherwise."""
        x = tf.cast(tf.convert_to_tensor(x), self.dtype)
        if x.shape.rank != 2 or (x.shape[-1] is not None and x.shape[-1] != self.dim):
            raise ConditionError(f"{what} must have shape (N, {self.dim}), got "
                                 f"{tuple(x.shape)}")
        return x

    def _inputs(self, x, condition) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(x checked, condition checked and broadcast) for a public call."""
        x = self.check_input(x)
        c = self.prepare_condition(condition, x)
        if c is None and self.empty_condition_tensor:
            c = tf.zeros(tf.stack([tf.shape(x)[0], 0]), self.dtype)
        return x, c

    def prepare_condition(self, condition, x: tf.Tensor) -> tf.Tensor | None:
        """A condition checked and broadcast to (N, C) for the N rows of x; None when C = 0."""
        c_dim = self.condition_dim
        if c_dim == 0:
            if condition is not None:
                raise ConditionError("this flow is unconditional (condition_dim=0) but a "
                                     "condition was given")
            return None
        if condition is None:
            raise ConditionError(f"this flow is conditional: pass condition= of shape "
                                 f"(N, {c_dim}) or ({c_dim},)")
        if isinstance(condition, (tf.Tensor, tf.Variable)):
            if not (condition.dtype.is_floating or condition.dtype.is_integer):
                raise ConditionError(f"condition must be numeric, got dtype {condition.dtype}")
        elif np.asarray(condition).dtype.kind not in "biuf":
            raise ConditionError(f"condition must be numeric with shape (N, {c_dim}), got "
                                 f"dtype {np.asarray(condition).dtype}")
        c = tf.cast(condition, self.dtype)
        n = x.shape[0]
        if c.shape.rank == 0:
            c = tf.reshape(c, [1, 1])
        elif c.shape.rank == 1:
            # (C,) is one condition for every row; (N,) is one value per row when C = 1.
            c = c[:, None] if c_dim == 1 and c.shape[0] != 1 else c[None]
        if c.shape.rank != 2 or c.shape[-1] != c_dim:
            raise ConditionError(f"condition must have shape (N, {c_dim}) or ({c_dim},), "
                                 f"got {tuple(c.shape)}")
        if c.shape[0] == 1 and n != 1:
            c = tf.repeat(c, tf.shape(x)[0] if n is None else n, axis=0)
        elif c.shape[0] is not None and n is not None and c.shape[0] != n:
            raise ConditionError(f"condition has {c.shape[0]} rows but the input has {n}; "
                                 f"expected shape ({n}, {c_dim})")
        return c

    # ------------------------------------------------------------------ the model folder
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write the model folder `path` (flow.json + weights) atomically: a kill leaves the
        previous save intact. `metadata`: JSON-able extras (preprocessing, schema, ...)."""
        tmp = new_tmp_dir(path)
        write_json(tmp / FLOW_FILE, {"family": self.family, "config": self.config_dict(),
                                     "dtype": self.dtype.name, "metadata": metadata or {}})
        tf.train.Checkpoint(flow=self).write(str(tmp / "weights"))
        return replace_dir(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Flow:
        """`load_flow(path)`, checked to be of this family."""
        return load_flow(path, family=None if cls is Flow else cls.family)


def read_flow_file(path: str | os.PathLike) -> tuple[Path, dict]:
    """(folder, contents of flow.json) of a model folder; UserError in one line otherwise."""
    folder = existing_dir(path)
    if folder is None or not (folder / FLOW_FILE).is_file():
        raise UserError(f"no saved flow at {path} (expected {Path(path) / FLOW_FILE})")
    try:
        saved = json.loads((folder / FLOW_FILE).read_text())
        family, config = saved["family"], saved["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{folder / FLOW_FILE} is damaged ({exc})") from None
    if not isinstance(config, dict) or family not in _FAMILY_MODULES:
        raise UserError(f"{folder / FLOW_FILE}: unknown flow family {family!r} (known: "
                        f"{', '.join(_FAMILY_MODULES)})")
    return folder, saved


def load_flow(path: str | os.PathLike, family: str | None = None) -> Flow:
    """Rebuild the flow saved in folder `path` with its weights, whatever its family.

    family: when given, a folder of another family is a one-line UserError.

        flow = load_flow("runs/jets/model")
        flow.sample(10, condition=c)
    """
    folder, saved = read_flow_file(path)
    if family is not None and saved["family"] != family:
        raise UserError(f"{folder} holds a {saved['family']} flow, not a {family} flow")
    importlib.import_module(_FAMILY_MODULES[saved["family"]])
    cls = FAMILIES[saved["family"]]
    try:
        flow = cls.from_config_dict(saved["config"], dtype=saved.get("dtype", "float32"))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{folder / FLOW_FILE}: bad config ({exc})") from None
    try:
        status = tf.train.Checkpoint(flow=flow).read(str(folder / "weights"))
        status.assert_existing_objects_matched().expect_partial()
    except (tf.errors.OpError, AssertionError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the weights in {folder} are missing or damaged ({first})") from None
    return flow


def load_metadata(path: str | os.PathLike) -> dict:
    """The `metadata` dict a model folder was saved with."""
    return read_flow_file(path)[1].get("metadata") or {}
