"""A trained FlashSim model: the flow and its preprocessing, read from a run's model folder.

Training itself is the one Trainer (`train_parallel.py --model_name jets|muons`, or the
`train_flashsim.py` wrapper); see experiments/flashsim.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..flows.base import FLOW_FILE, load_metadata
from ..flows.spline_coupling import SplineCouplingFlow
from .preprocessing import ModelTransform
from .schemas import Schema


def load_trained(path: str | os.PathLike, schema: Schema
                 ) -> tuple[SplineCouplingFlow, ModelTransform]:
    """(flow, preprocessing) of a FlashSim run folder (its `model/`) or a model folder."""
    folder = Path(path)
    if not (folder / FLOW_FILE).is_file() and (folder / "model" / FLOW_FILE).is_file():
        folder = folder / "model"
    flow = SplineCouplingFlow.load(folder)
    meta = load_metadata(folder)
    if "preprocessing" not in meta:
        raise UserError(f"{folder} holds a spline flow but not a FlashSim model (no "
                        f"preprocessing in its metadata)")
    return flow, ModelTransform.from_dict(meta["preprocessing"], schema)
