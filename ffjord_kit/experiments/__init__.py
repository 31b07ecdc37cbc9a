"""The registry of what `train_parallel.py` trains: --model_name -> an `Experiment` (base.py)
that gives the config, the data, the flow and the report. Physics plugs in here.

Each experiment module defines `EXPERIMENTS`, a dict of name -> `Experiment`. Modules are
imported on demand so `--model_name moon` never touches the calorimeter or MNIST code, and
an unknown name fails before TensorFlow is even imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .base import Experiment

MODULES: dict[str, str] = {
    "moon": "ffjord_kit.experiments.moon",
    "mnist": "ffjord_kit.experiments.images",
    "digits": "ffjord_kit.experiments.images",
    "calorimeter": "ffjord_kit.experiments.calorimeter",
    "jets": "ffjord_kit.experiments.flashsim",
    "muons": "ffjord_kit.experiments.flashsim",
    "klm": "ffjord_kit.experiments.klm",
}


def get_experiment(name: str) -> Experiment:
    """The experiment called `name`; a one-line UserError listing the choices otherwise."""
    if name not in MODULES:
        raise UserError(f"unknown model_name {name!r}; choose one of {', '.join(MODULES)}")
    module = importlib.import_module(MODULES[name])
    return module.EXPERIMENTS[name]


__all__ = ["MODULES", "get_experiment"]
