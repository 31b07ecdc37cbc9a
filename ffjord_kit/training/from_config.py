"""From a validated training config (config.py) to `FlowConfig` and `TrainSettings`."""

from __future__ import annotations

import math
from typing import Any

from ..config import Config
from ..flows.continuous import FlowConfig
from ..flows.flow_matching import FlowMatching
from .loop import TrainSettings


def backbone_kwargs_from(cfg: Config) -> dict[str, Any]:
    """The backbone's constructor settings for the config's BACKBONE."""
    sizes = list(cfg["LAYER_SIZE"][: cfg["NLAYERS"]])
    kind, act = cfg["BACKBONE"], cfg["ACT"].lower()
    common = {"activation": act, "dropout": cfg["DROPOUT"], "batch_norm": cfg["BATCHNORM"]}
    if kind == "mlp":
        return {"hidden": sizes, "activation": act}
    if kind == "dense_unet":
        return {"layer_sizes": sizes, **common}
    convolution = {"channels": sizes, "kernel": cfg["KERNEL"], "stride": cfg["STRIDE"], **common}
    if kind == "conv_unet":
        return {"image_shape": list(cfg["IMAGE_SHAPE"]), **convolution}
    return convolution  # calorimeter_branches


def flow_config_from(cfg: Config, condition_dim: int, seed: int = 0) -> FlowConfig:
    """A `FlowConfig` for data of shape SHAPE (flattened) with a condition of size C."""
    if cfg["TRAIN_SOLVER"] == "rk4":
        train_kwargs: dict[str, Any] = {"num_steps": cfg["NUM_STEPS"]}
    else:
        train_kwargs = {"atol": cfg["ATOL"], "rtol": cfg["RTOL"], "max_steps": 1000}
    return FlowConfig(
        dim=math.prod(cfg["SHAPE"]), condition_dim=condition_dim, num_stacked=cfg["NSTACKED"],
        backbone=cfg["BACKBONE"], backbone_kwargs=backbone_kwargs_from(cfg),
        train_solver=cfg["TRAIN_SOLVER"], train_solver_kwargs=train_kwargs,
        train_trace=cfg["TRACE"], eval_solver="dopri5",
        eval_solver_kwargs={"atol": cfg["EVAL_ATOL"], "rtol": cfg["EVAL_RTOL"],
                            "max_steps": 2000},
        eval_trace=cfg["EVAL_TRACE"], final_time=cfg["FINAL_TIME"], seed=seed,
        precision=cfg["PRECISION"])


def train_settings_from(cfg: Config) -> TrainSettings:
    return TrainSettings(
        lr=cfg["LR"], max_epochs=cfg["MAXEPOCH"], early_stop=cfg["EARLYSTOP"],
        lr_patience=cfg["LR_PATIENCE"], lr_factor=cfg["LR_FACTOR"], min_lr=cfg["MIN_LR"],
        warmup_epochs=cfg["WARMUP_EPOCHS"], scale_lr=cfg["SCALE_LR"],
        clip_norm=cfg["CLIP_NORM"], kinetic=cfg["REG"], jacobian=cfg["REG"],
        jit_compile=cfg["JIT"], objective=cfg["OBJECTIVE"],
        flow_matching=FlowMatching(cfg["SIGMA_MIN"], cfg["COUPLING"], cfg["OT_BLOCK"],
                                   cfg["FM_DRAWS"]),
        finetune_epochs=cfg["FINETUNE_EPOCHS"], finetune_lr=cfg["FINETUNE_LR"],
        time_budget_s=cfg["TIME_BUDGET_S"] or None)
