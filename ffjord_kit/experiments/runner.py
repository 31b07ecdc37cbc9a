"""`train_parallel.py` as a library call: config -> data -> flow -> Trainer -> report.

Output folder `<out>/<MODEL>/`: checkpoint/ (resumable), tensorboard/, model/ (the trained
flow, `ContinuousFlow.load`-able), config.json (the resolved config), history.json,
loss_curve.png, samples and plots from the experiment, metrics.json. Only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..distributed.backend import Backend
from ..errors import UserError
from ..fileio import ensure_writable_dir, write_json
from ..flows.continuous import ContinuousFlow
from ..training import (
    CheckpointStore,
    ShardedBatches,
    Trainer,
    flow_config_from,
    split_train_validation,
    train_settings_from,
)
from ..training.history_plot import plot_history
from . import get_experiment


@dataclass
class RunOptions:
    model_name: str
    config: str | None = None
    data_folder: str | None = None
    out: str = "runs"
    load: bool = False
    epochs: int | None = None
    seed: int = 0
    quick: bool = False
    progress: bool = True


def resolve_config(opts: RunOptions) -> Config:
    """The experiment's config (or --config), with --quick and --epochs applied."""
    exp = get_experiment(opts.model_name)
    cfg = load_config(opts.config or exp.default_config)
    overrides = {}
    if opts.quick:
        overrides = dict(exp.quick)
        overrides["BATCH"] = min(cfg["BATCH"], overrides.get("BATCH", cfg["BATCH"]))
    if opts.epochs is not None:
        if opts.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {opts.epochs}")
        overrides["MAXEPOCH"] = opts.epochs
    return cfg.replace(**overrides) if overrides else cfg


def run_experiment(opts: RunOptions, backend: Backend, log=print) -> int:
    """Train (or resume) one experiment; rank 0 writes the outputs. Returns an exit code."""
    exp = get_experiment(opts.model_name)
    cfg = resolve_config(opts)
    if opts.quick:
        # Tracing a graph costs more than a few tiny eager steps.
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
    chief = backend.is_chief
    run_dir = Path(opts.out) / cfg["MODEL"]
    if chief:
        ensure_writable_dir(run_dir)
    probe = CheckpointStore(run_dir, None, None)
    if not opts.load and probe.exists():
        raise UserError(f"{run_dir} already holds a checkpoint: pass --load to resume it, or "
                        f"choose another --out (nothing was overwritten)")
    if opts.load and not probe.exists():
        raise UserError(f"--load: no checkpoint in {run_dir} (expected "
                        f"{probe.path / 'state.json'})")
    prepared = exp.load(cfg, opts.data_folder, opts.quick, opts.seed)
    train, val = split_train_validation(prepared.train, cfg["VAL_FRACTION"], opts.seed)
    with backend.scope():
        flow = ContinuousFlow(flow_config_from(cfg, exp.condition_dim, opts.seed))
    trainer = Trainer(flow, train_settings_from(cfg), backend, run_dir,
                      log=log, progress=opts.progress)
    if chief:
        log(f"{exp.name}: {exp.description}; {len(train)} train / {len(val)} validation / "
            f"{len(prepared.test)} test events; backend {backend.name} with {backend.size} "
            f"rank(s); output {run_dir}")
        write_json(run_dir / "config.json", cfg.to_dict())
    result = trainer.fit(ShardedBatches(train, backend, cfg["BATCH"], opts.seed),
                         ShardedBatches(val, backend, cfg["BATCH"], opts.seed, shuffle=False),
                         resume=opts.load)
    if result.stopped == "sigterm":
        return 0
    if chief:
        write_json(run_dir / "history.json", {**result.history, "stopped": result.stopped,
                                               "best_epoch": result.best_epoch,
                                               "rolled_back": result.rolled_back})
        plot_history(result.history, run_dir / "loss_curve.png")
        flow.save(run_dir / "model")
        metrics = exp.report(flow, cfg, prepared, run_dir, opts.quick, opts.seed)
        metrics = {"model_name": exp.name, "epochs": result.epochs_done,
                   "stopped": result.stopped, "best_epoch": result.best_epoch,
                   "best_val_nll": min(result.history["val_nll"], default=None),
                   "seconds": result.history["seconds"][-1] if result.history["seconds"]
                   else 0.0, **metrics}
        write_json(run_dir / "metrics.json", metrics)
        log("metrics: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in metrics.items()))
    backend.barrier()
    return 0
