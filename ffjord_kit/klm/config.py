"""The KLM run configuration (JSON): data source, model, training, sampling, validation.

Every section is a dataclass; unknown or mistyped keys raise ConfigError naming the key.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from ..config import config_section, read_config_file
from ..errors import ConfigError
from ..flows.autoregressive_spline import AutoregressiveSplineConfig


@dataclass(frozen=True)
class DataConfig:
    """Where rows come from: a user file (`path`) or the synthetic generator."""

    path: str | None = None  # HDF5/.npz/.npy; None -> synthetic
    hdf5_key: str | None = None
    rename: dict = field(default_factory=dict)  # canonical name -> name in the file
    drop_nonfinite: bool = False
    synthetic_rows: int = 1_000_000
    synthetic_seed: int = 1
    split_seed: int = 42

    def __post_init__(self) -> None:
        if self.synthetic_rows < 10:
            raise ConfigError(f"data.synthetic_rows must be >= 10, got {self.synthetic_rows}")


@dataclass(frozen=True)
class TrainingConfig:
    """Adam with L2 weight decay added to the gradient (torch.optim.Adam's weight_decay)."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 100
    epochs: int = 10
    seed: int = 0  # batch order
    checkpoint_every_steps: int = 2000  # also checkpoint within an epoch
    val_batch_size: int = 8192
    lr_schedule: str = "constant"  # or "cosine": decays to lr_final_fraction x lr at the end
    lr_final_fraction: float = 0.02

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"training.lr_schedule must be 'constant' or 'cosine', got "
                              f"{self.lr_schedule!r}")
        if self.batch_size < 1 or self.epochs < 0 or self.checkpoint_every_steps < 1:
            raise ConfigError("training.batch_size and checkpoint_every_steps must be >= 1, "
                              "epochs >= 0")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ConfigError("training.learning_rate must be > 0 and weight_decay >= 0")


@dataclass(frozen=True)
class SamplingConfig:
    """Physical-support resampling: times below `min_time_ns` are redrawn, at most
    `max_rounds` times per row."""

    min_time_ns: float | None = 0.0  # None: no constraint
    max_rounds: int = 100
    batch_size: int = 65536

    def __post_init__(self) -> None:
        if self.max_rounds < 1 or self.batch_size < 1:
            raise ConfigError("sampling.max_rounds and sampling.batch_size must be >= 1")


@dataclass(frozen=True)
class ValidationConfig:
    """Context grid (quantile bins of hit z x muon momentum) and acceptance rule."""

    z_bins: int = 4
    momentum_bins: int = 3
    min_events: int = 200  # bins with fewer test rows are reported but not judged
    upsample: int = 5  # model draws per test context
    floor_repeats: int = 20
    ks_tolerance: float = 2.0  # pass: KS <= tolerance x statistical floor
    seed: int = 7
    density_contexts: int = 4000  # contexts averaged for the renormalised density curve
    density_mc: int = 64  # draws per context to estimate its acceptance

    def __post_init__(self) -> None:
        if self.z_bins < 1 or self.momentum_bins < 1 or self.upsample < 1:
            raise ConfigError("validation.z_bins, momentum_bins and upsample must be >= 1")


@dataclass(frozen=True)
class KLMConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: AutoregressiveSplineConfig = field(default_factory=AutoregressiveSplineConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    @classmethod
    def from_dict(cls, d: dict, where: str = "<config>") -> KLMConfig:
        sections = {"data": DataConfig, "model": AutoregressiveSplineConfig,
                    "training": TrainingConfig, "sampling": SamplingConfig,
                    "validation": ValidationConfig}
        unknown = sorted(set(d) - set(sections) - {"comment"})
        if unknown:
            raise ConfigError(f"{where}: unknown config section '{unknown[0]}' (known: "
                              f"{', '.join(sections)})")
        return cls(**{k: config_section(c, d.get(k, {}), where, k)
                      for k, c in sections.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | os.PathLike) -> KLMConfig:
    """Read a KLM config file (the one loader of ffjord_kit.config)."""
    return KLMConfig.from_dict(read_config_file(path), str(path))
