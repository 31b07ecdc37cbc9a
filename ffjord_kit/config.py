"""The one config loader: files, strict sections, overrides; and the continuous-flow configs.

Every config file of the project goes through `read_config_file` (strict JSON, or the
tutorial's relaxed style: single quotes, trailing commas, True/False/None) and is checked
strictly, one `ConfigError` line naming the key and the file for an unknown key, a missing one
or a wrong type; numbers written as strings ("1e-4") are accepted. Nested configs (FlashSim,
KLM: lower-case keys in sections) are built with `config_section` from their dataclasses;
`merge_overrides` applies a named override set (--quick) or command-line overrides.

The continuous-flow configs of `train_parallel.py` follow.

A config is a JSON object with the tutorial's keys (SHAPE, BATCH, LR, MAXEPOCH, EARLYSTOP,
NSTACKED, NLAYERS, LAYER_SIZE, ACT, MODEL, REG, and optionally KERNEL and STRIDE) plus the
settings this library needs (backbone, solver, trace estimator, ...; see `SCHEMA`). Files in
the tutorial's style load too: single quotes, trailing commas, Python's True/False/None, and
numbers written as strings ("LR": "1e-4"). Every problem is one `ConfigError` line naming the
key and the file.

    cfg = load_config("configs/config_moon.json")
    cfg["LR"], cfg.path
    cfg = cfg.replace(MAXEPOCH=3)      # validated overrides (command-line flags)
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

REQUIRED = object()  # marks a key without default


@dataclass(frozen=True)
class Key:
    """One config key: its kind ('int', 'float', 'bool', 'str', 'int_list', 'int_list_or_none',
    'float_or_none'), its default (REQUIRED if none) and what it means."""

    kind: str
    default: Any
    doc: str


SCHEMA: dict[str, Key] = {
    # --- the tutorial's keys
    "SHAPE": Key("int_list", REQUIRED, "data shape per event, e.g. [2] or [784]"),
    "BATCH": Key("int", REQUIRED, "batch size per rank"),
    "LR": Key("float", REQUIRED, "Adam learning rate (before scaling with ranks)"),
    "MAXEPOCH": Key("int", REQUIRED, "maximum number of epochs"),
    "EARLYSTOP": Key("int", REQUIRED,
                     "early-stopping patience in epochs on the validation loss (0: off)"),
    "NSTACKED": Key("int", REQUIRED, "number of stacked FFJORD blocks"),
    "NLAYERS": Key("int", REQUIRED, "encoder layers (levels) used from LAYER_SIZE"),
    "LAYER_SIZE": Key("int_list", REQUIRED,
                      "encoder widths (dense) or channels per level (convolutional)"),
    "ACT": Key("str", REQUIRED, "activation: tanh, softplus, swish or elu"),
    "MODEL": Key("str", REQUIRED, "checkpoint tag (folder name under --out)"),
    "REG": Key("float", REQUIRED, "RNODE weight of kinetic energy and Jacobian Frobenius terms"),
    "KERNEL": Key("int", 3, "convolution kernel size"),
    "STRIDE": Key("int", 2, "stride of the down/up-sampling convolutions"),
    # --- what the library needs
    "BACKBONE": Key("str", "dense_unet",
                    "dense_unet | conv_unet | calorimeter_branches | mlp"),
    "IMAGE_SHAPE": Key("int_list_or_none", None,
                       "(H, W, C) of image data for conv_unet, e.g. [28, 28, 1]"),
    "PRECISION": Key("str", "float32",
                     "float32 | bfloat16: the dense_unet/conv_unet backbone computes in bfloat16 "
                     "(weights, ODE state and log-densities stay float32)"),
    "DROPOUT": Key("float", 0.0, "dropout rate inside the backbone (0: off)"),
    "BATCHNORM": Key("bool", False, "batch normalisation inside the backbone"),
    "TRACE": Key("str", "hutchinson_gaussian",
                 "training trace estimator: exact | hutchinson_gaussian | "
                 "hutchinson_rademacher"),
    "TRAIN_SOLVER": Key("str", "rk4", "training ODE solver: rk4 (fixed grid) | dopri5"),
    "NUM_STEPS": Key("int", 4, "RK4 steps per block in training"),
    "ATOL": Key("float", 1e-5, "dopri5 absolute tolerance in training"),
    "RTOL": Key("float", 1e-3, "dopri5 relative tolerance in training"),
    "EVAL_TRACE": Key("str", "exact", "trace estimator for evaluation (log_prob)"),
    "EVAL_ATOL": Key("float", 1e-5, "dopri5 absolute tolerance for evaluation and sampling"),
    "EVAL_RTOL": Key("float", 1e-5, "dopri5 relative tolerance for evaluation and sampling"),
    "JIT": Key("bool", True, "XLA-compile the loss and gradient (pays off with rk4)"),
    "CLIP_NORM": Key("float", 1.0, "gradient clipping by global norm (0: off)"),
    "LR_PATIENCE": Key("int", 5, "ReduceLROnPlateau patience in epochs"),
    "LR_FACTOR": Key("float", 0.1, "ReduceLROnPlateau factor"),
    "MIN_LR": Key("float", 1e-7, "ReduceLROnPlateau floor"),
    "WARMUP_EPOCHS": Key("int", 0, "linear learning-rate warm-up length in epochs"),
    "SCALE_LR": Key("bool", False, "multiply LR by the number of ranks"),
    "VAL_FRACTION": Key("float", 0.1, "fraction of the training events held out for validation"),
    "MAX_EVENTS": Key("int", 0, "use at most this many training events (0: all)"),
    "NSAMPLES": Key("int", 2000, "samples drawn for the final plots"),
    "DIGITS": Key("int_list", [0, 3, 7], "digits with a 3x3 sample grid (mnist, digits)"),
    "DATA_FILE": Key("str", "gamma.hdf5",
                      "data file name inside --data_folder (calorimeter; CaloGAN's name)"),
    "UNIT_SCALE": Key("float", 1e-3, "GeV per voxel unit in the HDF5 file (calorimeter)"),
    "READOUT_MEV": Key("float", 0.0, "calorimeter: generated voxels below this read 0 (the "
                                     "detector's threshold; 0.5 for the synthetic photons)"),
    "FINAL_TIME": Key("float", 1.0, "integration time of each FFJORD block"),
    "TIME_BUDGET_S": Key("float", 0.0, "stop after the epoch in which training time passes "
                                       "this many seconds (0: off)"),
    "OBJECTIVE": Key("str", "max_likelihood",
                     "training objective: max_likelihood | flow_matching (no ODE solve)"),
    "SIGMA_MIN": Key("float", 0.0, "flow matching: width of the path's end around the data"),
    "COUPLING": Key("str", "independent",
                    "flow matching: base-data pairing, independent | ot (minibatch OT)"),
    "OT_BLOCK": Key("int", 64, "flow matching: rows per exact OT assignment"),
    "FM_DRAWS": Key("int", 1, "flow matching: path samples per data point and step"),
    "FINETUNE_EPOCHS": Key("int", 0,
                           "flow matching: the last N epochs train by maximum likelihood"),
    "FINETUNE_LR": Key("float", 0.0, "the fine-tune's own peak learning rate (0: the "
                                     "schedule goes on)"),
}

_TRACES = ("exact", "hutchinson_gaussian", "hutchinson_rademacher")
_SOLVERS = ("rk4", "dopri5")
_NAMES = {"true": True, "false": False, "null": None,
          "True": True, "False": False, "None": None}


def _literal(node: ast.AST, where: str) -> Any:
    """Evaluate a JSON/Python literal tree (dicts, lists, numbers, strings, true/false/null)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        return {_literal(k, where): _literal(v, where)
                for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, where) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ConfigError(f"{where}: unsupported value at line {getattr(node, 'lineno', '?')} "
                      f"(only numbers, strings, lists and true/false/null are allowed)")


def parse_config_text(text: str, where: str) -> dict:
    """Parse strict JSON, or the tutorial's relaxed style (single quotes, trailing commas)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        try:
            data = _literal(ast.parse(text.strip(), mode="eval").body, where)
        except SyntaxError:
            raise ConfigError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object of KEY: value pairs at the top level")
    return data


def _number(value: Any, key: str, where: str, integral: bool) -> int | float:
    kind = "an integer" if integral else "a number"
    original = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: key '{key}' must be {kind}, got {original!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: key '{key}' must be {kind}, got {original!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: key '{key}' must be finite, got {original!r}")
    if integral:
        if float(value) != int(value):
            raise ConfigError(f"{where}: key '{key}' must be an integer, got {original!r}")
        return int(value)
    return float(value)


def read_config_file(path: str | os.PathLike) -> dict:
    """The top-level object of a config file; ConfigError (one line, naming the file)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({exc})") from None
    return parse_config_text(text, str(p))


def merge_overrides(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied; nested dicts are merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def _typed(value: Any, hint: Any, key: str, where: str) -> Any:
    """`value` checked (and coerced: '1e-4' -> 1e-4) against a dataclass field's type."""
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X]
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        return _number(value, key, where, integral=True)
    if hint is float:
        return _number(value, key, where, integral=False)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where}: key '{key}' must be a string, got {value!r}")
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{where}: key '{key}' must be an object, got {value!r}")
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: key '{key}' must be a list, got {value!r}")
    return value


def config_section(cls, raw: Any, where: str, section: str = "", **fixed: Any):
    """An instance of dataclass `cls` from `raw` (a dict of its fields), checked strictly.

    `fixed`: fields set by the caller (refused when the file sets them). Range checks stay in
    the dataclass (`__post_init__`); their ConfigError gains the file name."""
    name = f"{section}." if section else ""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: section '{section}' must be an object, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.name not in fixed]
    for key in raw:
        if key in fixed:
            raise ConfigError(f"{where}: key '{name}{key}' is set by the program; remove it")
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{name}{key}' (known: {', '.join(known)})")
    values = {k: _typed(v, hints[k], name + k, where) for k, v in raw.items()}
    try:
        return cls(**values, **fixed)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: section '{section}': {exc}") from None


def _coerce(key: str, value: Any, where: str) -> Any:
    kind = SCHEMA[key].kind
    if kind.endswith("_or_none"):
        if value is None:
            return None
        kind = kind[: -len("_or_none")]
    if kind == "int":
        return _number(value, key, where, integral=True)
    if kind == "float":
        return _number(value, key, where, integral=False)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, got {value!r}")
        return value
    if kind == "int_list":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: key '{key}' must be a non-empty list of integers, "
                              f"got {value!r}")
        return [_number(v, key, where, integral=True) for v in value]
    raise AssertionError(kind)


def _check_semantics(v: dict, where: str) -> None:
    """Cross-key and range checks, one line each."""
    from . import backbones  # noqa: F401  (registers the backbones)
    from .flows.flow_matching import COUPLINGS, OBJECTIVES
    from .networks import ACTIVATIONS, BACKBONES

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: key '{key}' {message}")

    for key in ("BATCH", "MAXEPOCH", "NSTACKED", "NLAYERS", "NUM_STEPS", "NSAMPLES", "KERNEL",
                "STRIDE"):
        if v[key] < 1:
            raise bad(key, f"must be >= 1, got {v[key]}")
    for key in ("EARLYSTOP", "LR_PATIENCE", "WARMUP_EPOCHS", "MAX_EVENTS", "FINETUNE_EPOCHS"):
        if v[key] < 0:
            raise bad(key, f"must be >= 0, got {v[key]}")
    for key in ("LR", "ATOL", "RTOL", "EVAL_ATOL", "EVAL_RTOL", "FINAL_TIME", "UNIT_SCALE"):
        if v[key] <= 0:
            raise bad(key, f"must be > 0, got {v[key]}")
    for key in ("REG", "CLIP_NORM", "MIN_LR", "FINETUNE_LR", "READOUT_MEV", "TIME_BUDGET_S"):
        if v[key] < 0:
            raise bad(key, f"must be >= 0, got {v[key]}")
    if not 0 <= v["DROPOUT"] < 1:
        raise bad("DROPOUT", f"must be in [0, 1), got {v['DROPOUT']}")
    if not 0 < v["LR_FACTOR"] < 1:
        raise bad("LR_FACTOR", f"must be in (0, 1), got {v['LR_FACTOR']}")
    if not 0 < v["VAL_FRACTION"] < 1:
        raise bad("VAL_FRACTION", f"must be in (0, 1), got {v['VAL_FRACTION']}")
    if any(s < 1 for s in v["SHAPE"]):
        raise bad("SHAPE", f"must hold positive sizes, got {v['SHAPE']}")
    if any(s < 1 for s in v["LAYER_SIZE"]):
        raise bad("LAYER_SIZE", f"must hold positive sizes, got {v['LAYER_SIZE']}")
    if v["NLAYERS"] > len(v["LAYER_SIZE"]):
        raise bad("NLAYERS", f"is {v['NLAYERS']} but LAYER_SIZE has only "
                             f"{len(v['LAYER_SIZE'])} entries")
    if v["ACT"].lower() not in ACTIVATIONS:
        raise bad("ACT", f"must be one of {sorted(ACTIVATIONS)}, got {v['ACT']!r}")
    if v["PRECISION"] not in ("float32", "bfloat16"):
        raise bad("PRECISION", f"must be float32 or bfloat16, got {v['PRECISION']!r}")
    if v["PRECISION"] != "float32" and v["BACKBONE"] not in ("dense_unet", "conv_unet"):
        raise bad("PRECISION", f"bfloat16 is for BACKBONE dense_unet or conv_unet, not "
                               f"{v['BACKBONE']!r}")
    if v["BACKBONE"] not in BACKBONES:
        raise bad("BACKBONE", f"must be one of {sorted(BACKBONES)}, got {v['BACKBONE']!r}")
    for key in ("TRACE", "EVAL_TRACE"):
        if v[key] not in _TRACES:
            raise bad(key, f"must be one of {list(_TRACES)}, got {v[key]!r}")
    if v["OBJECTIVE"] not in OBJECTIVES:
        raise bad("OBJECTIVE", f"must be one of {list(OBJECTIVES)}, got {v['OBJECTIVE']!r}")
    if v["COUPLING"] not in COUPLINGS:
        raise bad("COUPLING", f"must be one of {list(COUPLINGS)}, got {v['COUPLING']!r}")
    if not 0 <= v["SIGMA_MIN"] < 1:
        raise bad("SIGMA_MIN", f"must be in [0, 1), got {v['SIGMA_MIN']}")
    if v["FM_DRAWS"] < 1:
        raise bad("FM_DRAWS", f"must be >= 1, got {v['FM_DRAWS']}")
    if v["OT_BLOCK"] < 2:
        raise bad("OT_BLOCK", f"must be >= 2, got {v['OT_BLOCK']}")
    if v["FINETUNE_EPOCHS"] and v["OBJECTIVE"] != "flow_matching":
        raise bad("FINETUNE_EPOCHS", "is a maximum-likelihood fine-tune after flow matching; "
                                     "it needs OBJECTIVE 'flow_matching'")
    if v["FINETUNE_EPOCHS"] > v["MAXEPOCH"]:
        raise bad("FINETUNE_EPOCHS", f"is {v['FINETUNE_EPOCHS']} but MAXEPOCH is {v['MAXEPOCH']}")
    if v["TRAIN_SOLVER"] not in _SOLVERS:
        raise bad("TRAIN_SOLVER", f"must be one of {list(_SOLVERS)}, got {v['TRAIN_SOLVER']!r}")
    if not v["MODEL"] or any(c in v["MODEL"] for c in "/\\") or v["MODEL"] in (".", ".."):
        raise bad("MODEL", f"must be a plain folder name, got {v['MODEL']!r}")
    if any(not 0 <= d <= 9 for d in v["DIGITS"]):
        raise bad("DIGITS", f"must hold digits 0-9, got {v['DIGITS']}")
    image = v["IMAGE_SHAPE"]
    if image is not None:
        if len(image) != 3 or any(s < 1 for s in image):
            raise bad("IMAGE_SHAPE", f"must be [H, W, C] with positive sizes, got {image}")
        if math.prod(image) != math.prod(v["SHAPE"]):
            raise bad("IMAGE_SHAPE", f"{image} holds {math.prod(image)} values but SHAPE "
                                     f"{v['SHAPE']} holds {math.prod(v['SHAPE'])}")
    elif v["BACKBONE"] == "conv_unet":
        raise bad("IMAGE_SHAPE", "is required by BACKBONE 'conv_unet' (e.g. [28, 28, 1])")


class Config(Mapping):
    """A validated training config: read-only mapping KEY -> value, plus its source path."""

    def __init__(self, values: dict, path: str):
        self._values, self.path = dict(values), path

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict:
        return dict(self._values)

    def replace(self, **overrides: Any) -> Config:
        """A copy with `overrides` applied and the whole config validated again."""
        return validate_config({**self._values, **overrides}, where=self.path,
                               note=lambda m: None)

    def __repr__(self) -> str:
        return f"Config({self.path!r}, {self._values!r})"


def _canonical_keys(raw: dict, where: str) -> dict:
    """Keys in the project's lower-case dialect (`lr`, `layer_size`) or the tutorial's
    UPPER-CASE (`LR`, `LAYER_SIZE`): both mean the same key; giving one twice is an error."""
    out: dict = {}
    for key, value in raw.items():
        canonical = key.upper() if isinstance(key, str) else key
        if canonical in out:
            raise ConfigError(f"{where}: key '{canonical}' is given twice ('{key}')")
        out[canonical] = value
    return out


def disabled_keys(raw: dict) -> list[str]:
    """Keys the tutorial's files use to park an alternative (`'SHAPE_': [28, 28, 1]` beside
    `'SHAPE': [784]`): a known key with a trailing underscore. Rename one to switch to it."""
    return [k for k in raw if k.endswith("_") and k.rstrip("_") in SCHEMA]


def validate_config(raw: dict, where: str = "<config>", note=print) -> Config:
    """Check keys and types (tutorial-style strings coerced), fill defaults, check ranges.
    Disabled alternatives (`disabled_keys`) are dropped with a one-line `note`."""
    raw = _canonical_keys(raw, where)
    parked = disabled_keys(raw)
    if parked:
        note(f"note: {where}: ignoring disabled key(s) {', '.join(parked)} (a trailing "
             f"underscore parks an alternative; remove it to use one)")
        raw = {k: v for k, v in raw.items() if k not in parked}
    unknown = [k for k in raw if k not in SCHEMA]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known keys: "
                          f"{', '.join(SCHEMA)})")
    values = {}
    for key, spec in SCHEMA.items():
        if key in raw:
            values[key] = _coerce(key, raw[key], where)
        elif spec.default is REQUIRED:
            raise ConfigError(f"{where}: missing key '{key}' ({spec.doc})")
        else:
            values[key] = spec.default
    _check_semantics(values, where)
    return Config(values, where)


def load_config(path: str | os.PathLike, note=print) -> Config:
    """Read and validate a continuous-flow config file; ConfigError (one line, naming the
    file) on problems."""
    return validate_config(read_config_file(path), where=str(path), note=note)
