"""The experiment interface of the runner (`Experiment.configure` and `plan`), and the
continuous-flow experiments' shared part (`FFJORDExperiment`)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..config import Config, load_config
from ..distributed.backend import Backend
from ..errors import DataError
from ..training.datasets import ArrayData, Batches, ShardedBatches, split_train_validation
from ..training.loop import TrainSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunOptions:
    """What `train_parallel.py` (and the thin FlashSim/KLM wrappers) ask for."""

    model_name: str
    config: str | None = None
    data_folder: str | None = None
    out: str = "runs"
    run_dir: str | None = None      # exact run folder (default: <out>/<the config's run name>)
    load: bool = False
    epochs: int | None = None
    seed: int = 0
    quick: bool = False
    synthetic: bool = False
    progress: bool = True
    report: bool = True             # run the experiment's final report
    overrides: dict[str, Any] = field(default_factory=dict)  # in the experiment's config layout


@dataclass
class Plan:
    """What an experiment hands the runner: the flow to build, how to train it, its data, and
    what to save and report afterwards. Built on every rank (each reads its own shard)."""

    build_flow: Callable[[], Any]               # -> a Flow of the contract (flows/base.py)
    settings: TrainSettings
    train: Batches
    val: Batches
    summary: str                                # one line for the log
    report: Callable[[Any, Path], dict[str, Any]]  # (trained flow, run folder) -> metrics
    metadata: dict[str, Any] = field(default_factory=dict)  # saved with the model


class Experiment(abc.ABC):
    """One `--model_name`: its config, data, flow and report (physics plugs in here)."""

    name: str
    description: str

    @abc.abstractmethod
    def configure(self, opts: RunOptions) -> tuple[Any, dict, str]:
        """(config object, its JSON-able form, run folder name) with --quick/--epochs applied.
        Cheap: runs before any data is read."""

    @abc.abstractmethod
    def plan(self, config: Any, opts: RunOptions, backend: Backend) -> Plan:
        """Read the data (this rank's share) and say how to train."""


@dataclass
class Prepared:
    """Preprocessed training events and held-out test events, plus what the report needs."""

    train: ArrayData
    test: ArrayData
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FFJORDExperiment(Experiment):
    """A continuous-flow experiment driven by a tutorial-style config (config.py).

    condition_dim: C of the flow (0: unconditional). quick: config overrides of --quick.
    load(cfg, data_folder, quick, seed, synthetic) -> Prepared.
    report(flow, cfg, prepared, out_dir, quick, seed) -> metrics dict (writes samples, plots).
    """

    name: str
    description: str
    condition_dim: int
    quick: dict[str, Any]
    load: Callable[..., Prepared]
    report: Callable[..., dict[str, Any]]

    @property
    def default_config(self) -> Path:
        return REPO_ROOT / "configs" / f"config_{self.name}.json"

    def configure(self, opts: RunOptions) -> tuple[Config, dict, str]:
        cfg = load_config(opts.config or self.default_config)
        overrides = {}
        if opts.quick:
            overrides = dict(self.quick)
            overrides["BATCH"] = min(cfg["BATCH"], overrides.get("BATCH", cfg["BATCH"]))
        if opts.epochs is not None:
            overrides["MAXEPOCH"] = opts.epochs
        if "MAXEPOCH" in overrides and cfg["FINETUNE_EPOCHS"] and "FINETUNE_EPOCHS" not in \
                opts.overrides:
            # A shorter run keeps the fine-tune's share of the epochs (at least one).
            share = cfg["FINETUNE_EPOCHS"] / cfg["MAXEPOCH"]
            overrides["FINETUNE_EPOCHS"] = max(1, round(share * overrides["MAXEPOCH"]))
        overrides.update(opts.overrides)
        cfg = cfg.replace(**overrides) if overrides else cfg
        return cfg, cfg.to_dict(), cfg["MODEL"]

    def plan(self, cfg: Config, opts: RunOptions, backend: Backend) -> Plan:
        from ..flows.continuous import ContinuousFlow
        from ..training import flow_config_from, train_settings_from

        prepared = self.load(cfg, opts.data_folder, opts.quick, opts.seed, opts.synthetic)
        train, val = split_train_validation(prepared.train, cfg["VAL_FRACTION"], opts.seed)
        return Plan(
            build_flow=lambda: ContinuousFlow(flow_config_from(cfg, self.condition_dim,
                                                               opts.seed)),
            settings=train_settings_from(cfg),
            train=ShardedBatches(train, backend, cfg["BATCH"], opts.seed),
            val=ShardedBatches(val, backend, cfg["BATCH"], opts.seed, shuffle=False),
            summary=(f"{self.name}: {self.description}; {len(train)} train / {len(val)} "
                     f"validation / {len(prepared.test)} test events"),
            report=lambda flow, out: self.report(flow, cfg, prepared, out, opts.quick,
                                                 opts.seed))


DEFAULT_DATA_FOLDER = Path("data")


def locate_data(data_folder: str | None, name: str, present: Callable[[Path], bool],
                write_synthetic: Callable[[Path], None], synthetic: bool, describe: str,
                log: Callable[[str], None] = print) -> Path:
    """The data set `name` (a file or a folder of files) for an experiment.

    `data_folder` may be the data set itself or the folder holding it (default ./data). When
    it is not there, the error names `--synthetic`; with `synthetic`, the project's synthetic
    stand-in is written there once (later runs read it) and the path returned.
    """
    base = Path(data_folder) if data_folder else DEFAULT_DATA_FOLDER
    path = base if (present(base) or base.name == name or base.suffix in (".h5", ".hdf5")) \
        else base / name
    if present(path):
        return path
    if not synthetic:
        raise DataError(f"{path} not found: give --data_folder holding {describe}, or pass "
                        f"--synthetic to train on the project's synthetic stand-in (written "
                        f"once to {path})")
    log(f"{path} not found: writing the project's SYNTHETIC stand-in there (--synthetic)")
    write_synthetic(path)
    return path


def batched_log_prob(flow, x: np.ndarray, condition: np.ndarray | None = None,
                     batch: int = 256) -> np.ndarray:
    """flow.log_prob over x (N, D) in batches (evaluation solver and trace), (N,) float64.

    Compiled once (tf.function): TFP's adaptive solver is far slower op by op. The last batch
    is padded to the full size so the graph is traced only once.
    """
    fn = tf.function(lambda xb, cb: flow.log_prob(xb, cb))
    out, n = [], len(x)
    batch = min(batch, n)
    for i in range(0, n, batch):
        idx = np.arange(i, i + batch) % n  # wraps around: pads the last batch
        c = None if condition is None else tf.constant(condition[idx])
        out.append(fn(tf.constant(x[idx]), c).numpy()[: min(batch, n - i)])
    return np.concatenate(out).astype(np.float64)


def make_sampler(flow):
    """`sample(n, condition=None, seed=0) -> (n, D) float32`: draws as `flow.sample` (base
    points from numpy's generator `seed`) with the base-to-data solve compiled once."""
    forward = tf.function(lambda zb, cb: flow.to_data(zb, cb)[0])

    def sample(n: int, condition: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, flow.config.dim))
        c = None if condition is None else tf.constant(condition, tf.float32)
        return forward(tf.constant(z, tf.float32), c).numpy()

    return sample
