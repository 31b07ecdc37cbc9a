"""`train_parallel.py` as a library call: config -> data -> flow -> Trainer -> model -> report.

The same path for every `--model_name` (continuous flows and spline flows alike): the
experiment (`get_experiment`) says what to build and read, the one `Trainer` trains it on the
chosen data-parallel backend.

Output folder `<out>/<run name>/` (or `run_dir`): checkpoint/ and checkpoint.prev/
(resumable), tensorboard/, model/ (the trained flow: `flows.load_flow`-able, with the
preprocessing in its metadata), config.json (the resolved config), history.json,
loss_curve.png, metrics.json and the experiment's own plots. Only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

from ..distributed.backend import Backend
from ..errors import UserError
from ..fileio import ensure_writable_dir, write_json
from ..flows.base import load_flow
from ..training import CheckpointStore, Trainer
from ..training.checkpoint import rank_target
from ..training.history_plot import plot_history
from . import get_experiment
from .base import RunOptions

__all__ = ["RunOptions", "resolve_config", "run_experiment"]


def resolve_config(opts: RunOptions):
    """(experiment, config object, JSON-able config, run folder) for `opts`."""
    if opts.epochs is not None and opts.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {opts.epochs}")
    exp = get_experiment(opts.model_name)
    config, config_dict, run_name = exp.configure(opts)
    run_dir = Path(opts.run_dir) if opts.run_dir else Path(opts.out) / run_name
    return exp, config, config_dict, run_dir


def run_experiment(opts: RunOptions, backend: Backend, log=print) -> int:
    """Train (or resume) one experiment; rank 0 writes the outputs. Returns an exit code."""
    exp, config, config_dict, run_dir = resolve_config(opts)
    if opts.quick:
        # Tracing a graph costs more than a few tiny eager steps.
        import warnings

        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
        warnings.filterwarnings("ignore", message="Even though the `tf.config.experimental_run")
    chief = backend.is_chief
    if chief:
        ensure_writable_dir(run_dir)
    probe = CheckpointStore(run_dir, None, None)
    if not opts.load and probe.exists():
        raise UserError(f"{run_dir} already holds a checkpoint: pass --load to resume it, or "
                        f"choose another --out (nothing was overwritten)")
    if opts.load and not probe.exists():
        raise UserError(f"--load: no checkpoint in {run_dir} (expected "
                        f"{probe.path / 'state.json'})")
    plan = exp.plan(config, opts, backend)
    with backend.scope():
        flow = plan.build_flow()
    trainer = Trainer(flow, plan.settings, backend, run_dir, log=log, progress=opts.progress)
    if chief:
        log(f"{plan.summary}; {flow.num_parameters():,} parameters; backend {backend.name} "
            f"with {backend.size} rank(s); output {run_dir}")
        write_json(run_dir / "config.json", config_dict)
    result = trainer.fit(plan.train, plan.val, resume=opts.load)
    if result.stopped == "sigterm":
        return 0
    with rank_target(run_dir / "model", backend) as model_dir:
        if model_dir is not None:
            flow.save(model_dir, plan.metadata)
    if chief:
        write_json(run_dir / "history.json", {**result.history, "stopped": result.stopped,
                                               "best_epoch": result.best_epoch,
                                               "rolled_back": result.rolled_back})
        plot_history(result.history, run_dir / "loss_curve.png")
        # The report evaluates the saved model, rebuilt outside the data-parallel engine
        # (rank 0 alone may not read the engine's synchronised variables).
        metrics = plan.report(load_flow(run_dir / "model"), run_dir) if opts.report else {}
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
