"""A short, deterministic data-parallel run that proves a backend averages gradients.

`run_check` trains a small flow of any family on a fixed 2-D data set (a noisy arc) for `steps`
steps: a `ContinuousFlow` (exact trace, fixed-step RK4, no dropout), or a conditional spline
coupling or autoregressive spline flow (batch norm off; condition = 1 where x0 > 0.5, else 0),
so every step is deterministic. Step k uses the global batch of rows (k * B + arange(B)) mod N
of the data set; rank r takes rows r, r + size, ... of it, so
the ranks together see exactly the global batch. With averaged gradients the final weights
then match a single process that used the whole batch (test_equivalence.py), whatever the
number of ranks. It also times the steps (benchmarks/bench_scaling.py) and checks that every
rank ends with the same weights. Used by scripts/check_distributed.py to test a cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from ..errors import UserError
from ..fileio import atomic_path, ensure_writable_dir, write_json
from ..flows.autoregressive_spline import (
    AutoregressiveSplineConfig,
    ConditionalAutoregressiveSplineFlow,
)
from ..flows.continuous import ContinuousFlow, FlowConfig
from ..flows.spline_coupling import SplineCouplingFlow, SplineFlowConfig
from ..train_step import make_apply, make_loss_and_grad
from .backend import Backend


@dataclass
class CheckSettings:
    """steps: optimizer steps; global_batch: B, summed over ranks (must divide by the ranks);
    n_data: size of the fixed data set; hidden: MLP widths; optimizer: 'adam' or 'sgd' (plain
    SGD makes a summed gradient visibly different from an averaged one; Adam is nearly
    scale-free); lr: learning rate; warmup_steps: steps left out of the timing (tracing)."""

    steps: int = 5
    global_batch: int = 64
    n_data: int = 4096
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    rk4_steps: int = 4
    optimizer: str = "adam"
    lr: float = 1e-2
    seed: int = 0
    warmup_steps: int = 2
    family: str = "continuous"  # one of FAMILIES

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UserError(f"unknown flow family {self.family!r}; choose one of "
                            f"{', '.join(FAMILIES)}")


# "flow_matching": the continuous flow trained by flow matching (its base draws and times
# follow the global batch's rows, so the check's equivalence holds for it too).
FAMILIES = ("continuous", "spline_coupling", "autoregressive_spline", "flow_matching")


def check_flow_config(s: CheckSettings) -> FlowConfig:
    """The small deterministic flow of the check (2-D, one block, exact trace, RK4)."""
    return FlowConfig(dim=2, num_stacked=1, backbone="mlp",
                      backbone_kwargs={"hidden": list(s.hidden), "activation": "tanh"},
                      train_solver="rk4", train_solver_kwargs={"num_steps": s.rk4_steps},
                      train_trace="exact", seed=s.seed)


def check_data(n: int, seed: int) -> np.ndarray:
    """n points (n, 2) float32 on a noisy arc: a fixed, non-Gaussian data set."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    return (np.stack([np.cos(t), np.sin(t)], 1) + 0.1 * rng.standard_normal((n, 2))
            ).astype(np.float32)


def check_flow(s: CheckSettings):
    """The small deterministic flow of the check, of family `s.family`."""
    if s.family in ("continuous", "flow_matching"):
        return ContinuousFlow(check_flow_config(s))
    if s.family == "spline_coupling":
        return SplineCouplingFlow(SplineFlowConfig(
            features=2, context_features=1, num_flow_steps=2, hidden=s.hidden[0],
            num_blocks=len(s.hidden), num_bins=6, tail_bound=3.0, batch_norm=False,
            seed=s.seed))
    # float64: its output layer starts at zero (an identity flow), and after a few steps the
    # weights downstream of it are so small that float32 rounding of the differently ordered
    # sums (one batch of B against two of B/2) reaches 4e-5 of them.
    return ConditionalAutoregressiveSplineFlow(AutoregressiveSplineConfig(
        dim=2, context_dim=1, num_layers=2, hidden_units=s.hidden[0],
        hidden_layers=len(s.hidden), num_bins=6, tail_bound=3.0, seed=s.seed), dtype="float64")


def make_optimizer(name: str, lr: float):
    """tf_keras Adam or SGD; UserError for other names."""
    if name == "adam":
        return tf_keras.optimizers.Adam(lr)
    if name == "sgd":
        return tf_keras.optimizers.SGD(lr)
    raise UserError(f"unknown optimizer {name!r}; choose adam or sgd")


def run_check(backend: Backend, settings: CheckSettings, out: str | Path | None = None,
              log=print) -> dict:
    """Train, time and cross-check; rank 0 writes result.json and weights.npz into `out`.

    Returns the result dict (on every rank): losses (per step, averaged over ranks),
    step_time_s (median after warm-up), samples_per_s (global), rank_weight_spread (largest
    difference between a rank's weights and the average over ranks; 0 when in sync).
    """
    s = settings
    if s.global_batch % backend.size:
        raise UserError(f"global batch {s.global_batch} does not divide by {backend.size} ranks")
    if s.steps <= s.warmup_steps:
        raise UserError(f"--steps must exceed the {s.warmup_steps} warm-up steps")
    data = check_data(s.n_data, s.seed)
    condition = (data[:, :1] > 0.5).astype(np.float32)  # for the conditional spline flows
    with backend.scope():
        flow = check_flow(s)
        optimizer = make_optimizer(s.optimizer, s.lr)
        optimizer.build(flow.trainable_variables)
    backend.prepare(flow.trainable_variables, optimizer)
    objective = "flow_matching" if s.family == "flow_matching" else "max_likelihood"
    step = backend.train_step(make_loss_and_grad(flow, objective=objective,
                                                 replica=(backend.rank, backend.size)),
                              make_apply(optimizer, flow.trainable_variables))
    losses, times = [], []
    for k in range(s.steps):
        rows = (k * s.global_batch + np.arange(s.global_batch)) % s.n_data
        mine = rows[backend.rank::backend.size]
        c = None if flow.condition_dim == 0 else tf.constant(condition[mine], flow.dtype)
        t0 = time.perf_counter()
        loss, _ = step(tf.constant(data[mine], flow.dtype), c)
        loss = float(loss)
        times.append(time.perf_counter() - t0)
        losses.append(loss)
        log(f"rank {backend.rank} step {k} loss {loss:.6f}")
    weights = [v.numpy() for v in flow.trainable_variables]
    flat = np.concatenate([w.ravel() for w in weights]).astype(np.float64)
    spread = float(backend.mean(float(np.max(np.abs(flat - backend.mean(flat))))))
    step_time = float(np.median(times[s.warmup_steps:]))
    result = {"backend": backend.name, "family": s.family, "ranks": backend.size,
              "steps": s.steps,
              "global_batch": s.global_batch, "losses": losses, "step_time_s": step_time,
              "samples_per_s": s.global_batch / step_time,
              "rank_weight_spread": spread,
              "n_parameters": int(flat.size)}
    if backend.is_chief and out is not None:
        out = ensure_writable_dir(out)
        write_json(out / "result.json", result)
        with atomic_path(out / "weights.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, *weights)
    backend.barrier()
    return result
