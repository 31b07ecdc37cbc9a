"""FlashSim run configuration (JSON): which schema, the flow architecture and training settings.

    {"kind": "jets", "flow": {...SplineFlowConfig fields except features/context...},
     "training": {...TrainSettings fields...}}

`features` and `context_features` come from the schema, `num_flow_steps` defaults to the number
of targets (the reference choice).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from ..config import config_section, read_config_file
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
    max_rows: int = 0  # train on the first rows only (0: all)
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


def config_from_dict(d: dict, where: str = "<config>") -> FlashSimConfig:
    """Validate and build a FlashSimConfig; ConfigError naming the bad key and file."""
    unknown = sorted(set(d) - {"kind", "flow", "training", "comment"})
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: kind, flow, training)")
    if "kind" not in d:
        raise ConfigError(f"{where}: missing key 'kind' (jets or muons)")
    schema = get_schema(d["kind"])
    flow = {"num_flow_steps": schema.n_targets, **d.get("flow", {})}
    flow_cfg = config_section(SplineFlowConfig, flow, where, "flow",
                              features=schema.n_targets, context_features=schema.n_conditions)
    train = config_section(TrainSettings, d.get("training", {}), where, "training")
    return FlashSimConfig(schema, flow_cfg, train)


def load_config(path: str | os.PathLike) -> FlashSimConfig:
    """Read a FlashSim config file (the one loader of ffjord_kit.config)."""
    return config_from_dict(read_config_file(path), str(path))
