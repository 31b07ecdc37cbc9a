"""FlashSim training: Adam, cosine annealing per epoch, validation NLL each epoch, atomic
checkpoints (weights, optimizer, epoch, history, preprocessing) every N epochs, resume.

Output folder layout:
    preprocessing.json   fitted ModelTransform (standardisation constants)
    checkpoint/          last checkpoint: tf.train.Checkpoint (flow, optimizer, epoch) +
                         history.json, written to a temp folder then swapped in
    model/               final SplineCouplingFlow.save
    history.json         per epoch: lr, train NLL, validation NLL, seconds, rows, dropped rows
    config.json          the run configuration

Distributed backends wrap `make_train_step`'s plain function (gradient all-reduce) and give
each rank its (rank, size) shard of the reader; this module implements none itself.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from ..errors import DataError, TrainingDiverged, UserError
from ..fileio import ensure_writable_dir, existing_dir, new_tmp_dir, replace_dir, write_json
from ..flows.spline_coupling import SplineCouplingFlow
from .config import FlashSimConfig
from .preprocessing import ModelTransform, drop_nonfinite_rows
from .reader import ChunkedReader, make_dataset, read_rows


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float = 0.0) -> float:
    """Cosine annealing (T_max = epochs, stepped per epoch): lr at the start of `epoch`."""
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def nll_loss(flow: SplineCouplingFlow, x: tf.Tensor, c: tf.Tensor,
             training: bool = True) -> tf.Tensor:
    """Mean negative log-likelihood (nats per object, model space)."""
    return -tf.reduce_mean(flow.log_prob(x, condition=c, training=training))


def make_train_step(flow: SplineCouplingFlow,
                    optimizer) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A plain (not yet tf.function-compiled) step: loss, gradients, Adam update. A
    distributed backend can wrap it or replace the gradient reduction."""
    variables = flow.trainable_variables

    def step(x: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = nll_loss(flow, x, c, training=True)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def make_transform_fn(transform: ModelTransform, rng: np.random.Generator):
    """rows [n, C + T] -> (model targets [n, T], model conditions [n, C]) for the reader."""
    n_c = transform.schema.n_conditions

    def fn(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transform.targets(rows[:, n_c:], rng), transform.conditions(rows[:, :n_c])

    return fn


def validation_nll(flow: SplineCouplingFlow, transform: ModelTransform, rows: np.ndarray,
                   batch_size: int = 8192, seed: int = 123) -> float:
    """Mean NLL (nats/object, model space, eval-mode batch norm) of finite rows [N, C + T]."""
    n_c = transform.schema.n_conditions
    x = transform.targets(rows[:, n_c:], np.random.default_rng(seed))
    c = transform.conditions(rows[:, :n_c])
    log_prob = tf.function(lambda a, b: flow.log_prob(a, condition=b))
    total = 0.0
    for s in range(0, len(x), batch_size):
        total += float(tf.reduce_sum(log_prob(x[s:s + batch_size], c[s:s + batch_size])))
    return -total / len(x)


def _write_checkpoint(out: Path, ckpt: tf.train.Checkpoint, history: list[dict]) -> None:
    tmp = new_tmp_dir(out / "checkpoint")
    ckpt.write(str(tmp / "state"))
    (tmp / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    replace_dir(tmp, out / "checkpoint")


def _progress(step: int, total: int, loss: float, t0: float, stream=sys.stderr) -> None:
    done = int(30 * step / max(total, 1))
    rate = step / max(time.time() - t0, 1e-9)
    stream.write(f"\r  [{'#' * done}{'.' * (30 - done)}] {step}/{total} "
                 f"loss {loss:.4f} {rate:.1f} it/s")
    stream.flush()


def train_flashsim(config: FlashSimConfig, train_paths: Sequence[str | os.PathLike],
                   val_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                   resume: bool = False, rank: int = 0, size: int = 1,
                   progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train (or resume) a FlashSim flow; returns {"history": [...], "model": path, ...}."""
    out = ensure_writable_dir(out)
    schema, tcfg = config.schema, config.training
    tf_keras.utils.set_random_seed(tcfg.seed)

    ckpt_dir = existing_dir(out / "checkpoint")
    if resume and ckpt_dir is None:
        raise UserError(f"--resume given but {out}/checkpoint does not exist")
    if ckpt_dir is not None and not resume:
        raise UserError(f"{out} already holds a checkpoint; pass --resume or use a new --out")

    if resume:
        transform = ModelTransform.from_dict(
            json.loads((out / "preprocessing.json").read_text()), schema)
    else:
        fit_rows, _ = drop_nonfinite_rows(read_rows(train_paths, schema, tcfg.fit_rows))
        transform = ModelTransform.fit(schema, fit_rows, seed=tcfg.seed)
        write_json(out / "preprocessing.json", transform.to_dict())
        write_json(out / "config.json", config.to_dict())

    val_rows, val_dropped = drop_nonfinite_rows(read_rows(val_paths, schema, tcfg.val_rows))
    if len(val_rows) == 0:
        raise DataError("validation files hold no finite rows")
    reader = ChunkedReader(train_paths, schema, tcfg.chunk_rows, tcfg.shuffle_chunks,
                           rank=rank, size=size, seed=tcfg.seed)

    flow = SplineCouplingFlow(config.flow)
    optimizer = tf_keras.optimizers.Adam(learning_rate=tcfg.lr)
    optimizer.build(flow.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
    ckpt = tf.train.Checkpoint(flow=flow, optimizer=optimizer, epoch=epoch_var)
    history: list[dict] = []
    if resume:
        ckpt.read(str(ckpt_dir / "state")).assert_existing_objects_matched()
        history = json.loads((ckpt_dir / "history.json").read_text())
        log(f"resumed from epoch {int(epoch_var.numpy())}")

    step = tf.function(make_train_step(flow, optimizer))
    n_params = flow.num_parameters()
    log(f"{schema.kind}: {n_params:,} parameters, {reader.n_rows:,} training rows on rank "
        f"{rank}/{size}, {len(val_rows):,} validation rows ({val_dropped} non-finite dropped)")
    steps_per_epoch = reader.n_rows // tcfg.batch_size
    if steps_per_epoch == 0:
        raise DataError(f"fewer training rows ({reader.n_rows}) than one batch "
                        f"({tcfg.batch_size})")

    for epoch in range(int(epoch_var.numpy()), tcfg.epochs):
        lr = cosine_lr(epoch, tcfg.epochs, tcfg.lr, tcfg.lr_min)
        optimizer.learning_rate.assign(lr)
        rng = np.random.default_rng([tcfg.seed, epoch, rank, 7])
        ds = make_dataset(reader, tcfg.batch_size, make_transform_fn(transform, rng), epoch,
                          schema.n_targets, schema.n_conditions)
        t0, losses, dropped_before = time.time(), [], reader.dropped_rows
        for i, (xb, cb) in enumerate(ds):
            loss = float(step(xb, cb))
            if not math.isfinite(loss):
                raise TrainingDiverged(f"non-finite training loss at epoch {epoch + 1}, step "
                                       f"{i + 1} (lr {lr:.3g}); lower training.lr")
            losses.append(loss)
            if progress and (i % 10 == 0 or i + 1 == steps_per_epoch):
                _progress(i + 1, steps_per_epoch, loss, t0)
        if progress:
            sys.stderr.write("\n")
        seconds = time.time() - t0
        val = validation_nll(flow, transform, val_rows)
        record = {"epoch": epoch + 1, "lr": lr, "train_nll": float(np.mean(losses)),
                  "val_nll": val, "seconds": seconds, "steps": len(losses),
                  "samples_per_s": len(losses) * tcfg.batch_size / seconds,
                  "dropped_rows": reader.dropped_rows - dropped_before}
        history.append(record)
        log(f"epoch {epoch + 1}/{tcfg.epochs} lr {lr:.3g} train NLL {record['train_nll']:.4f} "
            f"val NLL {val:.4f} ({seconds:.1f} s, {record['samples_per_s']:.0f} samples/s"
            + (f", {record['dropped_rows']} non-finite rows dropped" if record["dropped_rows"]
               else "") + ")")
        epoch_var.assign(epoch + 1)
        if (epoch + 1) % tcfg.checkpoint_every == 0 or epoch + 1 == tcfg.epochs:
            _write_checkpoint(out, ckpt, history)

    flow.save(out / "model")
    write_json(out / "history.json", history)
    return {"history": history, "model": str(out / "model"), "parameters": n_params,
            "dropped_rows": reader.dropped_rows}


def load_trained(out: str | os.PathLike, schema) -> tuple[SplineCouplingFlow, ModelTransform]:
    """The flow and preprocessing saved by `train_flashsim` in folder `out`."""
    out = Path(out)
    if not (out / "preprocessing.json").is_file():
        raise UserError(f"{out} is not a FlashSim training folder (no preprocessing.json)")
    transform = ModelTransform.from_dict(json.loads((out / "preprocessing.json").read_text()),
                                         schema)
    return SplineCouplingFlow.load(out / "model"), transform
