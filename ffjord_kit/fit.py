"""A compact training loop for continuous flows on in-memory data (toy scripts, benchmarks).

`train_parallel.py` has the full loop (checkpoints, resume, distributed backends); this one is
for small problems held in memory: shuffled mini-batches, Adam with cosine decay and gradient
clipping, a stop on non-finite loss that restores the last good weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras

from .errors import TrainingDiverged
from .train_step import grads_finite, make_apply, make_loss_and_grad


@dataclass
class FitSettings:
    epochs: int = 20
    batch_size: int = 512
    lr: float = 5e-3
    lr_final_fraction: float = 0.05  # cosine decay to lr * this over the run
    kinetic: float = 0.0
    jacobian: float = 0.0
    clip_norm: float | None = 1.0
    jit_compile: bool = True
    seed: int = 0
    time_budget_s: float | None = None  # stop after this much training time


def fit(flow, x: np.ndarray, settings: FitSettings, condition: np.ndarray | None = None,
        on_epoch: Callable[[int, dict], None] | None = None, log: Callable = print) -> dict:
    """Train `flow` on x (N, D) [and condition (N, C)]; returns the history dict.

    Raises TrainingDiverged (after restoring the last epoch's weights) on a non-finite loss.
    """
    n = len(x)
    steps_per_epoch = max(1, n // settings.batch_size)
    total = steps_per_epoch * settings.epochs
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        settings.lr, decay_steps=total, alpha=settings.lr_final_fraction)
    optimizer = tf_keras.optimizers.Adam(schedule)
    variables = flow.trainable_variables
    loss_and_grad = make_loss_and_grad(flow, settings.kinetic, settings.jacobian,
                                       settings.jit_compile)
    apply = make_apply(optimizer, variables, settings.clip_norm)
    rng = np.random.default_rng(settings.seed)
    history: dict[str, list] = {"epoch": [], "loss": [], "nll": [], "nfe_per_step": [],
                                "seconds": [], "lr": []}
    good = [v.numpy() for v in variables]
    t_train = 0.0
    for epoch in range(settings.epochs):
        order = rng.permutation(n)
        losses, nlls, nfes = [], [], []
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * settings.batch_size:(s + 1) * settings.batch_size]
            xb = tf.constant(x[idx])
            cb = None if condition is None else tf.constant(condition[idx])
            flow.reset_nfe()
            loss, aux, grads = loss_and_grad(xb, cb)
            if not grads_finite(loss, grads):
                for v, val in zip(variables, good, strict=True):
                    v.assign(val)
                raise TrainingDiverged(
                    f"non-finite loss at epoch {epoch + 1}, step {s + 1}; restored the weights "
                    f"of epoch {epoch} (try a lower --lr or tighter tolerances)")
            apply(grads)
            losses.append(float(loss))
            nlls.append(float(aux["nll"]))
            nfes.append(flow.nfe)
        t_train += time.perf_counter() - t0
        good = [v.numpy() for v in variables]
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "nll": float(np.mean(nlls)),
               "nfe_per_step": float(np.mean(nfes)), "seconds": t_train,
               "lr": float(schedule(optimizer.iterations))}
        for k, v in row.items():
            history[k].append(v)
        log(f"epoch {epoch + 1:3d}/{settings.epochs}  loss {row['loss']:.4f}  "
            f"nll {row['nll']:.4f}  nfe/step {row['nfe_per_step']:.0f}  "
            f"lr {row['lr']:.2e}  {t_train:.1f}s")
        if on_epoch is not None:
            on_epoch(epoch, row)
        if settings.time_budget_s is not None and t_train >= settings.time_budget_s:
            log(f"time budget of {settings.time_budget_s:.0f}s reached")
            break
    return history
