"""Maximum-likelihood training of the KLM timing flow: Adam with L2 weight decay, validation
NLL per epoch, NaN steps skipped and counted, atomic checkpoints and exact resume.

Batch order of epoch e is a permutation drawn from (seed, e), so a resumed run (from an
epoch end or from a mid-epoch checkpoint) sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from ..errors import ConfigError, DataError, TrainingDiverged
from ..fileio import existing_dir, new_tmp_dir, replace_dir, write_json
from .config import TrainingConfig
from .model import KLMTimingModel
from .schema import KLMTable


@dataclass
class TrainState:
    """Progress saved in a checkpoint (epoch counts from 0; `batch` = next batch index)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    nan_steps: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    best_val_nll: float = float("inf")
    history: list = field(default_factory=list)


class KLMTrainer:
    """Owns the optimizer and the compiled step for one model and one training config."""

    def __init__(self, model: KLMTimingModel, config: TrainingConfig, steps_per_epoch: int = 1):
        """`steps_per_epoch` sets the length of the cosine schedule (epochs x steps)."""
        self.model = model
        self.config = config
        self.variables = list(model.flow.trainable_variables)
        lr = config.learning_rate
        if config.lr_schedule == "cosine":
            lr = tf_keras.optimizers.schedules.CosineDecay(
                config.learning_rate, max(config.epochs * steps_per_epoch, 1),
                alpha=config.lr_final_fraction)
        self.optimizer = tf_keras.optimizers.Adam(learning_rate=lr)
        self.optimizer.build(self.variables)
        wd = float(config.weight_decay)
        flow, variables, opt = model.flow, self.variables, self.optimizer
        spec = [tf.TensorSpec([None, 1], tf.float32), tf.TensorSpec([None, 4], tf.float32)]

        @tf.function(input_signature=spec)
        def step(u, c):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(flow.log_prob(u, condition=c))
            grads = tape.gradient(loss, variables)
            # torch.optim.Adam(weight_decay=wd) semantics: L2 term added to the gradient.
            grads = [g + wd * v for g, v in zip(grads, variables, strict=True)]
            ok = tf.math.is_finite(loss)
            for g in grads:
                ok = tf.logical_and(ok, tf.reduce_all(tf.math.is_finite(g)))

            def apply():
                opt.apply_gradients(zip(grads, variables, strict=True))
                return tf.constant(True)

            applied = tf.cond(ok, apply, lambda: tf.constant(False))
            return loss, applied

        self.train_step = step  # (u (B, 1), c (B, 4)) -> (loss, applied)

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, path: Path, state: TrainState, fingerprint: dict) -> None:
        """Weights, optimizer slots and progress into folder `path`, atomically."""
        tmp = new_tmp_dir(path)
        np.savez(tmp / "weights.npz", *[v.numpy() for v in self.variables])
        np.savez(tmp / "optimizer.npz", *[v.numpy() for v in self.optimizer.variables])
        write_json(tmp / "state.json", {**state.__dict__, "fingerprint": fingerprint})
        replace_dir(tmp, path)

    def load_checkpoint(self, path: Path, fingerprint: dict) -> TrainState:
        folder = existing_dir(path)
        if folder is None:
            raise DataError(f"no checkpoint at {path}")
        raw = json.loads((folder / "state.json").read_text())
        saved = raw.pop("fingerprint")
        if saved != json.loads(json.dumps(fingerprint)):
            raise ConfigError(f"checkpoint {path} was written with a different model/data/"
                              f"training setup; use a new --out or --no-resume")
        with np.load(folder / "weights.npz") as npz:
            for i, v in enumerate(self.variables):
                v.assign(npz[f"arr_{i}"])
        with np.load(folder / "optimizer.npz") as npz:
            for i, v in enumerate(self.optimizer.variables):
                v.assign(npz[f"arr_{i}"])
        if raw.get("best_val_nll") in (None, "inf"):
            raw["best_val_nll"] = float("inf")
        return TrainState(**raw)

    # -- evaluation ---------------------------------------------------------------------
    def mean_nll(self, table: KLMTable) -> float:
        """Mean -log p(t | context) in nats, density per ns."""
        lp = self.model.log_prob(table.time, table.context, self.config.val_batch_size)
        return float(-np.mean(lp))

    # -- loop ---------------------------------------------------------------------------
    def fit(self, train: KLMTable, val: KLMTable, out_dir: Path, fingerprint: dict,
            resume: bool = True, log: Callable[[str], None] = print,
            stop_after_steps: int | None = None) -> TrainState:
        """Train for `config.epochs`; checkpoint to out_dir/checkpoint every
        `checkpoint_every_steps` and at each epoch end; best-validation model to
        out_dir/model. `stop_after_steps` ends early (after a checkpoint), for tests of
        resume. Returns the final state (history: one dict per epoch)."""
        cfg = self.config
        ckpt = out_dir / "checkpoint"
        state = TrainState()
        if resume and existing_dir(ckpt) is not None:
            state = self.load_checkpoint(ckpt, fingerprint)
            log(f"resumed from {ckpt}: epoch {state.epoch}, batch {state.batch}, "
                f"step {state.step}")
        n_batches = len(train) // cfg.batch_size
        if n_batches == 0:
            raise DataError(f"training split has {len(train)} rows, fewer than one batch "
                            f"({cfg.batch_size})")
        u_all = self.model.prep.encode_time(train.time)
        c_all = self.model.prep.encode_context(train.context)
        consecutive_nan = 0
        steps_this_call = 0
        while state.epoch < cfg.epochs:
            perm = np.random.default_rng([cfg.seed, state.epoch]).permutation(len(train))
            t0 = time.perf_counter()
            while state.batch < n_batches:
                idx = perm[state.batch * cfg.batch_size:(state.batch + 1) * cfg.batch_size]
                loss, applied = self.train_step(u_all[idx], c_all[idx])
                state.batch += 1
                state.step += 1
                steps_this_call += 1
                if bool(applied):
                    consecutive_nan = 0
                    state.epoch_loss_sum += float(loss)
                    state.epoch_loss_count += 1
                else:
                    state.nan_steps += 1
                    consecutive_nan += 1
                    if consecutive_nan > cfg.max_nan_steps:
                        raise TrainingDiverged(f"{consecutive_nan} consecutive steps had a "
                                               f"NaN/inf loss or gradient (step {state.step}); "
                                               f"lower training.learning_rate")
                if state.step % cfg.checkpoint_every_steps == 0 or (
                        stop_after_steps is not None and steps_this_call >= stop_after_steps):
                    self.save_checkpoint(ckpt, state, fingerprint)
                    if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                        return state
            val_nll = self.mean_nll(val)
            train_loss = state.epoch_loss_sum / max(state.epoch_loss_count, 1)
            # Flow loss is in standardised units; report both in nats per ns.
            record = {"epoch": state.epoch + 1, "step": state.step,
                      "train_nll": train_loss - self.model.prep.log_abs_det_time,
                      "val_nll": val_nll, "nan_steps_total": state.nan_steps,
                      "seconds": time.perf_counter() - t0}
            state.history.append(record)
            log(f"epoch {record['epoch']}/{cfg.epochs}: train NLL {record['train_nll']:.4f}, "
                f"val NLL {val_nll:.4f} nats, NaN steps skipped {state.nan_steps}, "
                f"{record['seconds']:.1f} s")
            if val_nll < state.best_val_nll:
                state.best_val_nll = val_nll
                self.model.save(out_dir / "model", {"val_nll": val_nll,
                                                    "epoch": state.epoch + 1})
            state.epoch += 1
            state.batch = 0
            state.epoch_loss_sum, state.epoch_loss_count = 0.0, 0
            self.save_checkpoint(ckpt, state, fingerprint)
        return state
