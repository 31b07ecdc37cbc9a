"""The one training loop, for every flow family of the contract (flows/base.py).

    trainer = Trainer(flow, TrainSettings(...), backend=SingleProcess(), run_dir="runs/moon")
    result = trainer.fit(train_batches, val_batches, resume=False)

- Adam with gradient clipping by global norm and optional L2 weight decay; optional linear
  warm-up and learning-rate scaling with the number of ranks; a schedule (`plateau`:
  ReduceLROnPlateau on the validation loss; `cosine_epoch` / `cosine_step`: cosine annealing
  to `min_lr` stepped per epoch or per step; `constant`); early stopping on the validation loss
  (0: off); the best epoch's weights restored at the end.
- Validation NLL every epoch; a progress bar (loss, learning rate, function evaluations) and
  TensorBoard scalars on rank 0.
- An atomic checkpoint after every epoch, and every `checkpoint_every_steps` steps within one
  (see checkpoint.py); `resume=True` continues model,
  optimizer, schedules, epoch, step and random state exactly.
- SIGTERM (what SLURM sends before a time limit or preemption): finish the current step, save a
  checkpoint (mid-epoch if need be) and return with `result.stopped == "sigterm"`.
- The objective: maximum likelihood, or flow matching for continuous flows (no ODE solve in
  training; the validation figure stays the likelihood, with the training solver).
- A NaN or infinite loss or gradient: roll back to the last checkpoint and lower the learning
  rate once (x `nan_lr_factor`); a second one raises `TrainingDiverged`.

Everything rank-related goes through the `Backend`: rank 0 alone writes checkpoints, logs and
summaries; losses, validation figures and the stop decisions are averaged over ranks so every
rank takes the same branch.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras
from tensorflow.core.framework import summary_pb2

from ..distributed.backend import Backend, SingleProcess
from ..errors import TrainingDiverged
from ..flows.flow_matching import OBJECTIVES, FlowMatching
from ..train_step import make_apply, make_loss_and_grad
from .checkpoint import CheckpointStore, RunLock, rank_target
from .datasets import Batches
from .schedule import EarlyStopping, ReduceOnPlateau

HISTORY_KEYS = ("epoch", "loss", "nll", "kinetic", "jacobian", "val_nll", "lr",
                "nfe_per_step", "seconds")


@dataclass
class TrainSettings:
    """Optimisation settings (from the config's BATCH, LR, MAXEPOCH, EARLYSTOP, REG, ...)."""

    lr: float = 1e-3
    max_epochs: int = 10
    early_stop: int = 10           # patience in epochs; 0: off
    schedule: str = "plateau"       # plateau | cosine_epoch | cosine_step | constant
    lr_patience: int = 5
    lr_factor: float = 0.1
    min_lr: float = 1e-7            # plateau floor; the cosine schedules' final value
    warmup_epochs: int = 0
    scale_lr: bool = False          # multiply lr by the number of ranks
    clip_norm: float = 1.0          # 0: no clipping
    kinetic: float = 0.0            # RNODE weights
    jacobian: float = 0.0
    weight_decay: float = 0.0       # L2 term added to the gradient
    jit_compile: bool = True
    nan_lr_factor: float = 0.1
    checkpoint_every_steps: int = 0  # also checkpoint within an epoch (0: at epoch ends only)
    restore_best: bool = True       # end with the best epoch's weights (else the last ones)
    time_budget_s: float | None = None  # stop after the epoch that exceeds this training time
    objective: str = "max_likelihood"  # | flow_matching (continuous flows)
    flow_matching: FlowMatching = field(default_factory=FlowMatching)  # its path and coupling
    finetune_epochs: int = 0        # flow_matching: the last N epochs train by max likelihood
    finetune_lr: float = 0.0        # the fine-tune's own peak lr (0: the schedule goes on)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not 0 <= self.finetune_epochs <= self.max_epochs:
            raise ValueError(f"finetune_epochs must be in [0, epochs = {self.max_epochs}], "
                             f"got {self.finetune_epochs}")
        if self.finetune_epochs and self.objective != "flow_matching":
            raise ValueError("finetune_epochs is a maximum-likelihood fine-tune after "
                             "flow_matching; it needs objective='flow_matching'")
        if self.finetune_lr < 0:
            raise ValueError(f"finetune_lr must be >= 0, got {self.finetune_lr}")

    def objective_at(self, epoch: int) -> str:
        """The objective of epoch `epoch` (from 0): the fine-tune's epochs are the last ones."""
        if epoch >= self.max_epochs - self.finetune_epochs:
            return "max_likelihood"
        return self.objective

    def finetune_starts(self, epoch: int) -> bool:
        """True for the first epoch of a fine-tune with its own learning rate."""
        return bool(self.finetune_epochs and self.finetune_lr
                    and epoch == self.max_epochs - self.finetune_epochs)

    def scheduled_lr(self, base_lr: float, epoch: int, step: int, steps: int) -> float:
        """The cosine schedules' learning rate at (epoch, step); `base_lr` otherwise. A
        fine-tune with its own `finetune_lr` runs its own cosine over its epochs."""
        start, length = 0, self.max_epochs
        if self.finetune_lr and self.objective_at(epoch) != self.objective:
            start, length = self.max_epochs - self.finetune_epochs, self.finetune_epochs
        if self.schedule == "cosine_epoch":
            progress = (epoch - start) / max(length, 1)
        elif self.schedule == "cosine_step":
            progress = ((epoch - start) * steps + step) / max(length * steps, 1)
        else:
            return base_lr
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES = ("plateau", "cosine_epoch", "cosine_step", "constant")

@dataclass
class TrainResult:
    history: dict[str, list] = field(default_factory=dict)
    stopped: str = "max_epochs"     # 'max_epochs' | 'early_stop' | 'time_budget' | 'sigterm'
    best_epoch: int = -1
    rolled_back: bool = False
    epochs_done: int = 0


class _NonFinite(Exception):
    """A non-finite loss or gradient in a step (handled by rolling back)."""


class Trainer:
    """Trains any flow of the contract with checkpoints in `run_dir` (module docstring)."""

    def __init__(self, flow, settings: TrainSettings, backend: Backend | None = None,
                 run_dir: str | Path = "run", log: Callable[[str], None] = print,
                 tensorboard: bool = True, progress: bool = True):
        self.flow, self.settings = flow, settings
        self.backend = backend or SingleProcess()
        self.run_dir = Path(run_dir)
        self.chief = self.backend.is_chief
        self.log = log if self.chief else (lambda msg: None)
        self.progress = progress and self.chief
        self.base_lr = settings.lr * (self.backend.size if settings.scale_lr else 1)
        variables = flow.trainable_variables
        with self.backend.scope():
            self.optimizer = tf_keras.optimizers.Adam(learning_rate=self.base_lr)
            self.optimizer.build(variables)
            self.grad_norm = tf.Variable(0.0, trainable=False, name="last_grad_norm",
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.backend.prepare(variables, self.optimizer)
        self.store = CheckpointStore(self.run_dir, flow, self.optimizer, warn=self.log)
        self.lock = RunLock(self.run_dir, warn=self.log)
        self._apply = self._build_apply()
        self._steps: dict[str, Callable] = {}  # objective -> step, built on first use
        self._val_nll = tf.function(
            lambda x, c=None: flow.loss(x, c, training=False)[1]["nll"],
            jit_compile=settings.jit_compile, reduce_retracing=True)
        self._writer = (tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
                        if tensorboard and self.chief else None)
        self._term_requested = False
        self._on_epoch = None

    # ----------------------------------------------------------------------------- pieces
    def _step_for(self, objective: str) -> Callable:
        """The backend's training step for `objective` (the RNODE weights act in maximum
        likelihood only, i.e. in a flow-matching run's fine-tune)."""
        if objective not in self._steps:
            self._steps[objective] = self.backend.train_step(
                self._build_loss_and_grad(objective), self._apply)
        return self._steps[objective]

    def _build_loss_and_grad(self, objective: str) -> Callable:
        s = self.settings
        ml = objective == "max_likelihood"
        return make_loss_and_grad(
            self.flow, s.kinetic if ml else 0.0, s.jacobian if ml else 0.0, s.jit_compile,
            objective=objective, flow_matching=s.flow_matching,
            replica=(self.backend.rank, self.backend.size))

    def _build_apply(self) -> Callable:
        s = self.settings
        return make_apply(self.optimizer, self.flow.trainable_variables, s.clip_norm,
                          s.weight_decay, norm_out=self.grad_norm)

    def _set_lr(self, lr: float) -> None:
        self.optimizer.learning_rate.assign(lr)

    def _on_sigterm(self, signum, frame) -> None:
        self._term_requested = True

    def _agreed_stop(self) -> bool:
        """True on every rank once any rank received SIGTERM."""
        flag = 1.0 if self._term_requested else 0.0
        return float(self.backend.mean(flag)) > 0.0

    # ----------------------------------------------------------------------------- state
    def _state(self, epoch: int, step: int, sums: dict, lr: float, plateau: ReduceOnPlateau,
               stopper: EarlyStopping, history: dict, rolled_back: bool) -> dict[str, Any]:
        return {"epoch": epoch, "step": step, "sums": sums, "lr": lr,
                "plateau": plateau.state(), "early_stopping": stopper.state(),
                "history": history, "rolled_back": rolled_back,
                "flow_config": {"family": self.flow.family, **self.flow.config_dict()}}

    def _save(self, state: dict, best: list[np.ndarray] | None) -> None:
        with rank_target(self.run_dir, self.backend) as folder:
            if folder is not None:
                store = self.store if folder == self.run_dir else CheckpointStore(
                    folder, self.flow, self.optimizer)
                store.save(state, best)
        self.backend.barrier()

    def _restore(self) -> tuple[dict, list[np.ndarray] | None]:
        state, best = self.store.load()
        for key in ("plateau", "early_stopping"):
            state[key] = {k: (float(v) if isinstance(v, str) else v)
                          for k, v in state[key].items()}
        return state, best

    # ----------------------------------------------------------------------------- main loop
    def fit(self, train: Batches, val: Batches | None = None, resume: bool = False,
            on_epoch: Callable[[int, dict], None] | None = None) -> TrainResult:
        """Train until max_epochs, early stopping, the time budget or SIGTERM; returns the
        history and why it stopped. On return the flow holds the best epoch's weights (by
        validation NLL; by training NLL when `val` is None), unless `restore_best` is off or
        SIGTERM stopped it (then the checkpointed current weights). `on_epoch(epoch, row)`
        is called after each epoch (epoch counts from 0)."""
        if self.chief:
            self.lock.acquire()
        self._on_epoch = on_epoch
        try:
            return self._fit(train, val, resume)
        finally:
            self.lock.release()

    def _fit(self, train: Batches, val: Batches | None, resume: bool) -> TrainResult:
        s = self.settings
        steps = train.steps_per_epoch
        warmup_steps = s.warmup_epochs * steps
        if resume:
            state, best = self._restore()
            self.log(f"resumed from {self.store.path} at epoch {state['epoch'] + 1}, "
                     f"step {state['step']}")
        else:
            state = self._state(0, 0, _empty_sums(), self.base_lr,
                                ReduceOnPlateau(s.lr_patience, s.lr_factor, s.min_lr),
                                EarlyStopping(s.early_stop), {k: [] for k in HISTORY_KEYS},
                                False)
            best = None
            self._save(state, best)  # epoch 0: the state a first-epoch NaN rolls back to
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            while True:
                try:
                    return self._run(state, best, train, val, steps, warmup_steps)
                except _NonFinite as exc:
                    if state.get("rolled_back"):
                        raise TrainingDiverged(
                            f"{exc}; the loss was non-finite again after rolling back to the "
                            f"last checkpoint and lowering the learning rate once (try a lower "
                            f"LR, a larger REG, CLIP_NORM or more NUM_STEPS)") from None
                    state, best = self._restore()
                    state["lr"] *= s.nan_lr_factor
                    state["rolled_back"] = True
                    self.log(f"{exc}: rolled back to epoch {state['epoch']}, step "
                             f"{state['step']}; learning rate lowered to {state['lr']:.3g}")
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _run(self, state: dict, best, train: Batches, val: Batches | None, steps: int,
             warmup_steps: int) -> TrainResult:
        s, flow = self.settings, self.flow
        plateau = ReduceOnPlateau(**state["plateau"])
        stopper = EarlyStopping(**state["early_stopping"])
        history, lr, rolled_back = state["history"], state["lr"], state["rolled_back"]
        epoch, start_step, sums = state["epoch"], state["step"], dict(state["sums"])
        result = TrainResult(history=history, rolled_back=rolled_back)
        elapsed = history["seconds"][-1] if history["seconds"] else 0.0
        stopped = "max_epochs"
        while epoch < s.max_epochs:
            if s.finetune_starts(epoch) and start_step == 0:
                lr = s.finetune_lr  # the fine-tune's schedule starts from its own peak
            bar = (tf_keras.utils.Progbar(steps, stateful_metrics=["lr", "nfe"],
                                          verbose=1 if sys.stdout.isatty() else 2)
                   if self.progress else None)
            if bar is not None:
                self.log(f"epoch {epoch + 1}/{s.max_epochs}")
            t0 = time.perf_counter()
            for i, batch in enumerate(train.epoch(epoch, start_step)):
                step = start_step + i
                global_step = epoch * steps + step
                step_lr = s.scheduled_lr(lr, epoch, step, steps)
                if warmup_steps:
                    step_lr *= min(1.0, (global_step + 1) / warmup_steps)
                self._set_lr(step_lr)
                x, c = batch if train.conditional else (batch, None)
                flow.reset_nfe()
                loss, aux = self._step_for(s.objective_at(epoch))(x, c)
                loss_v, norm = float(loss), float(self.grad_norm.numpy())
                if not (math.isfinite(loss_v) and math.isfinite(norm)):
                    raise _NonFinite(f"non-finite loss ({loss_v}) or gradient norm ({norm}) "
                                     f"at epoch {epoch + 1}, step {step + 1}")
                nfe = flow.nfe
                sums["n"] += 1
                sums["loss"] += loss_v
                sums["nfe"] += nfe
                for key in ("nll", "kinetic", "jacobian"):
                    sums[key] += float(aux[key]) if key in aux else 0.0
                self.lock.beat()
                if bar is not None:
                    bar.update(step + 1, [("loss", loss_v), ("lr", step_lr), ("nfe", nfe)])
                if (s.checkpoint_every_steps and (step + 1) % s.checkpoint_every_steps == 0
                        and step + 1 < steps):
                    self._save(self._state(epoch, step + 1, sums, lr, plateau, stopper,
                                           history, rolled_back), best)
                if self._agreed_stop():
                    elapsed += time.perf_counter() - t0
                    self._save(self._state(epoch, step + 1, sums, lr, plateau, stopper,
                                           history, rolled_back), best)
                    self.log(f"SIGTERM: checkpoint saved at epoch {epoch + 1}, step "
                             f"{step + 1} in {self.store.path}; continue with --load")
                    result.stopped = "sigterm"
                    result.epochs_done = epoch
                    return result
            elapsed += time.perf_counter() - t0
            val_nll = math.nan if val is None else float(self.backend.mean(self._validate(val)))
            row = {"epoch": epoch + 1, "val_nll": val_nll,
                   "lr": s.scheduled_lr(lr, epoch, 0, steps), "seconds": elapsed,
                   "nfe_per_step": sums["nfe"] / max(sums["n"], 1)}
            for key in ("loss", "nll", "kinetic", "jacobian"):
                row[key] = float(self.backend.mean(sums[key] / max(sums["n"], 1)))
            fm_epoch = s.objective_at(epoch) == "flow_matching"
            if fm_epoch:
                row["nll"] = math.nan  # flow matching computes no likelihood while training
            for key in HISTORY_KEYS:
                history[key].append(row[key])
            train_figure = row["loss"] if fm_epoch else row["nll"]
            monitored = train_figure if val is None else val_nll
            if not math.isfinite(monitored):
                raise _NonFinite(f"non-finite validation loss at epoch {epoch + 1}")
            is_best, stop = stopper.update(monitored, epoch + 1)
            if is_best and s.restore_best:
                best = [v.numpy() for v in flow.weight_variables()]
            if s.schedule == "plateau":
                lr = plateau.update(monitored, lr)
            self._summaries(row)
            nfe = f"nfe/step {row['nfe_per_step']:.0f}  " if row["nfe_per_step"] else ""
            shown = (f"val_nll {val_nll:.4f}" if val is not None else
                     "" if fm_epoch else f"nll {row['nll']:.4f}")
            self.log(f"epoch {epoch + 1}: loss {row['loss']:.4f}  {shown}  "
                     f"lr {row['lr']:.2e}  {nfe}{elapsed:.1f}s" + ("  (best)" if is_best else ""))
            epoch, start_step, sums = epoch + 1, 0, _empty_sums()
            self._save(self._state(epoch, 0, sums, lr, plateau, stopper, history, rolled_back),
                       best)
            if self._on_epoch is not None:
                self._on_epoch(epoch - 1, row)
            if stop:
                stopped = "early_stop"
                self.log(f"early stopping: no improvement for {s.early_stop} epochs")
                break
            if s.time_budget_s is not None and elapsed >= s.time_budget_s:
                stopped = "time_budget"
                self.log(f"time budget of {s.time_budget_s:.0f}s reached")
                break
        if best is not None:
            for v, value in zip(flow.weight_variables(), best, strict=True):
                v.assign(value)
            self.log(f"restored the weights of epoch {stopper.best_epoch} "
                     f"({'train nll' if val is None else 'val_nll'} {stopper.best:.4f})")
        result.stopped, result.best_epoch, result.epochs_done = stopped, stopper.best_epoch, epoch
        return result

    def _validate(self, val: Batches) -> float:
        """Mean validation NLL (nats) on this rank's share, with the training solver."""
        total, n = 0.0, 0
        for batch in val.epoch(0):
            x, c = batch if val.conditional else (batch, None)
            total += float(self._val_nll(x, c)) * int(x.shape[0])
            n += int(x.shape[0])
        return total / max(n, 1)

    def _summaries(self, row: dict) -> None:
        if self._writer is None:
            return
        with self._writer.as_default(step=row["epoch"]):
            for key in ("loss", "nll", "val_nll", "lr", "nfe_per_step"):
                if math.isfinite(row[key]):
                    write_scalar(key, row[key])
        self._writer.flush()


def write_scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar via TF's core `tf.summary.write` (the `tensorboard` package, which
    `tf.summary.scalar` needs, is not part of tensorflow-cpu): same event record, plugin
    'scalars'."""
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def _empty_sums() -> dict[str, float]:
    return {"n": 0, "loss": 0.0, "nll": 0.0, "kinetic": 0.0, "jacobian": 0.0, "nfe": 0.0}
