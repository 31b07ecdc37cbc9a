"""FlashSim run configuration (JSON): which schema, the flow architecture and training settings.

    {"kind": "jets", "flow": {...SplineFlowConfig fields except features/context...},
     "training": {...TrainSettings fields...}}

`features` and `context_features` come from the schema, `num_flow_steps` defaults to the number
of targets (the reference choice).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError
from ..flows.spline_coupling import SplineFlowConfig
from .schemas import Schema, get_schema


@dataclass(frozen=True)
class TrainSettings:
    """Adam + cosine annealing over `epochs` (stepped per epoch, down to lr_min); a checkpoint
    at every epoch end and every `checkpoint_every_steps` steps (0: epoch ends only)."""

    epochs: int = 600
    batch_size: int = 2048
    lr: float = 1e-5
    lr_min: float = 0.0
    checkpoint_every_steps: int = 0
    chunk_rows: int = 16384
    shuffle_chunks: int = 8
    val_rows: int = 100_000
    fit_rows: int = 200_000
    seed: int = 0


@dataclass(frozen=True)
class FlashSimConfig:
    schema: Schema
    flow: SplineFlowConfig
    training: TrainSettings

    def to_dict(self) -> dict:
        flow = asdict(self.flow)
        for k in ("features", "context_features"):
            flow.pop(k)
        return {"kind": self.schema.kind, "flow": flow, "training": asdict(self.training)}


def _checked(cls, d: dict, what: str) -> dict:
    if not isinstance(d, dict):
        raise ConfigError(f"config {what!r} must be an object")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in config {what!r}; known: {sorted(known)}")
    return d


def config_from_dict(d: dict) -> FlashSimConfig:
    """Validate and build a FlashSimConfig; ConfigError naming the bad key otherwise."""
    unknown = sorted(set(d) - {"kind", "flow", "training"})
    if unknown:
        raise ConfigError(f"unknown top-level config key(s) {unknown}")
    if "kind" not in d:
        raise ConfigError("config is missing 'kind' (jets or muons)")
    schema = get_schema(d["kind"])
    flow = dict(_checked(SplineFlowConfig, d.get("flow", {}), "flow"))
    for k in ("features", "context_features"):
        if k in flow:
            raise ConfigError(f"config 'flow.{k}' is set by the schema; remove it")
    flow.setdefault("num_flow_steps", schema.n_targets)
    try:
        flow_cfg = SplineFlowConfig(features=schema.n_targets,
                                    context_features=schema.n_conditions, **flow)
        train = TrainSettings(**_checked(TrainSettings, d.get("training", {}), "training"))
    except TypeError as exc:
        raise ConfigError(f"bad config value: {exc}") from None
    return FlashSimConfig(schema, flow_cfg, train)


def load_config(path: str | os.PathLike) -> FlashSimConfig:
    try:
        with open(path) as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    return config_from_dict(d)
