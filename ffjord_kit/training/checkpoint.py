"""Atomic training checkpoints: everything needed to continue a run exactly.

A checkpoint is one folder, `<run>/checkpoint/`, holding
  - `tf/`: a `tf.train.Checkpoint` of the flow (weights, batch-norm statistics, the random
    generator that draws Hutchinson probes) and the optimizer (step count, Adam moments,
    learning-rate variable),
  - `best.npz`: the weights of the best validation epoch (early stopping restores them),
  - `state.json`: epoch, step within the epoch, learning rate, schedule states, history, the
    flow config and the loop's bookkeeping.
It is written to a temporary sibling and swapped in with `fileio.replace_dir`, so a kill at
any moment (SIGKILL included) leaves the previous checkpoint intact; `load` also accepts the
`.old` copy a kill between the two renames can leave behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import UserError
from ..fileio import existing_dir, new_tmp_dir, replace_dir

STATE_FILE = "state.json"


def model_variables(flow) -> list[tf.Variable]:
    """The flow's backbone variables (trainable and batch-norm statistics), in a fixed order."""
    return [v for b in flow.backbones for v in b.variables]


class CheckpointStore:
    """Save and load the checkpoint folder of one run (rank 0 saves; every rank may load)."""

    def __init__(self, folder: str | Path, flow, optimizer):
        self.path = Path(folder) / "checkpoint"
        self.flow, self.optimizer = flow, optimizer
        # Test hook: called with the temporary folder once it is fully written, before the swap.
        self.before_swap: Callable[[Path], None] | None = None

    def _tracker(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(flow=self.flow, optimizer=self.optimizer)

    def exists(self) -> bool:
        folder = existing_dir(self.path)
        return folder is not None and (folder / STATE_FILE).is_file()

    def save(self, state: dict[str, Any], best_weights: list[np.ndarray] | None) -> Path:
        """Write model, optimizer, best weights and `state` (JSON-able) atomically."""
        self.remove_stale_temporaries()
        tmp = new_tmp_dir(self.path)
        self._tracker().write(str(tmp / "tf" / "ckpt"))
        if best_weights is not None:
            np.savez(tmp / "best.npz", *best_weights)
        (tmp / STATE_FILE).write_text(json.dumps(_jsonable(state), indent=1))
        if self.before_swap is not None:
            self.before_swap(tmp)
        return replace_dir(tmp, self.path)

    def load(self) -> tuple[dict[str, Any], list[np.ndarray] | None]:
        """Restore flow and optimizer in place; returns (state, best weights or None)."""
        folder = existing_dir(self.path)
        if folder is None or not (folder / STATE_FILE).is_file():
            raise UserError(f"no checkpoint to resume from at {self.path} "
                            f"(expected {self.path / STATE_FILE}); run without --load first")
        try:
            state = json.loads((folder / STATE_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"checkpoint {folder / STATE_FILE} is unreadable: {exc}") from None
        saved = state.get("flow_config")
        if saved is not None and saved != self.flow.config.to_dict():
            diff = sorted(k for k in set(saved) | set(self.flow.config.to_dict())
                          if saved.get(k) != self.flow.config.to_dict().get(k))
            raise UserError(f"checkpoint {folder} was written for a different model "
                            f"(differs in {', '.join(diff)}); use the config it was trained "
                            f"with or a new --out folder")
        self._tracker().read(str(folder / "tf" / "ckpt")).assert_existing_objects_matched()
        best = None
        if (folder / "best.npz").is_file():
            with np.load(folder / "best.npz") as data:
                best = [data[f"arr_{i}"] for i in range(len(data.files))]
        return state, best

    def remove_stale_temporaries(self) -> None:
        """Delete half-written temporary folders left by a killed save."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; infinities as strings (Python's float() reads them back)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return repr(obj)  # 'inf', '-inf', 'nan'
    return obj
