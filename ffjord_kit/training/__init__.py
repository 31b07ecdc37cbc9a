"""Training for `train_parallel.py`: the fault-tolerant loop, checkpoints, tf.data pipelines,
and the mapping from a validated config to flow and optimiser settings."""

from .. import backbones  # noqa: F401  (registers dense_unet, conv_unet, calorimeter_branches)
from .checkpoint import CheckpointStore
from .datasets import ArrayData, ShardedBatches, split_train_validation
from .from_config import flow_config_from, train_settings_from
from .loop import Trainer, TrainResult, TrainSettings

__all__ = ["ArrayData", "CheckpointStore", "ShardedBatches", "TrainResult", "TrainSettings",
           "Trainer", "flow_config_from", "split_train_validation", "train_settings_from"]
