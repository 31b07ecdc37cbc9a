#!/usr/bin/env python
"""Two moons: the project's default FFJORD training path against the tutorial's ("stock").

Every configuration trains in this one process on the same data; the clock counts training
only (tracing and XLA compilation included, test evaluation excluded). The test NLL is always
measured the same way: exact trace, Dormand-Prince at atol = rtol = 1e-5, on held-out points.

- stock: 4 FFJORD blocks, MLPs of 7 x Dense(8, tanh), Dormand-Prince atol 1e-5 / rtol 1e-3
  with TFP's adjoint gradients, Hutchinson (Gaussian) trace, plain tf.function, batch 256,
  Adam 1e-2, 20 epochs of 8192 points.
- ablations, one change at a time towards the default (what each buys);
- default: the project's configuration (ffjord_kit.toys.tutorial_part1.Part1Settings).

Printed: seconds per step, function evaluations per step, time to reach the stock run's final
test NLL, and the test NLL after the stock run's wall-clock budget; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import tensorflow as tf
import tf_keras

from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.toys.moons import moons_entropy, sample_moons
from ffjord_kit.toys.tutorial_part1 import Part1Settings
from ffjord_kit.train_step import make_apply, make_loss_and_grad

EVAL = {"eval_solver": "dopri5", "eval_trace": "exact",
        "eval_solver_kwargs": {"atol": 1e-5, "rtol": 1e-5, "max_steps": 4000}}


def stock_config(**override) -> tuple[FlowConfig, dict]:
    cfg = dict(dim=2, num_stacked=4, backbone_kwargs={"hidden": [8] * 7, "activation": "tanh"},
               train_solver="dopri5", train_solver_kwargs={"atol": 1e-5, "rtol": 1e-3},
               train_trace="hutchinson_gaussian", **EVAL)
    train = dict(batch=256, lr=1e-2, reg=0.0, jit=False, clip=None, cosine=False)
    for k, v in override.items():
        (train if k in train else cfg)[k] = v
    return FlowConfig(**cfg), train


def default_config(**override) -> tuple[FlowConfig, dict]:
    s = Part1Settings()
    cfg = s.flow_config().to_dict()
    cfg.update(EVAL)
    train = dict(batch=s.batch_size, lr=s.lr, reg=s.kinetic, jit=s.jit_compile, clip=1.0,
                 cosine=True)
    for k, v in override.items():
        (train if k in train else cfg)[k] = v
    return FlowConfig(**cfg), train


def test_nll(flow, x_test) -> float:
    return float(-np.mean(np.concatenate(
        [flow.log_prob(x_test[i:i + 2048]).numpy() for i in range(0, len(x_test), 2048)])))


def train_timed(name, cfg, tr, x, x_test, budget_s, max_steps, n_evals, target=None,
                stop_at_target=False, log=print) -> dict:
    """Train until `budget_s` seconds of training or `max_steps`; evaluate `n_evals` times."""
    flow = ContinuousFlow(cfg)
    # Cosine decay to 5% over the run: over the steps when only steps bound it, else over the
    # wall-clock budget (the learning rate is set from the elapsed training time each step).
    timed_cosine = tr["cosine"] and np.isfinite(budget_s)
    lr = (tf_keras.optimizers.schedules.CosineDecay(tr["lr"], max_steps, alpha=0.05)
          if tr["cosine"] and not timed_cosine else tr["lr"])
    opt = tf_keras.optimizers.Adam(lr)
    loss_and_grad = make_loss_and_grad(flow, tr["reg"], tr["reg"], tr["jit"])
    apply = make_apply(opt, flow.trainable_variables, tr["clip"])
    rng = np.random.default_rng(0)
    clock, step, step_times, nfes, curve = 0.0, 0, [], [], []
    # Evaluate on a clock schedule, or on a step schedule when only steps bound the run.
    by_steps = not np.isfinite(budget_s)
    every = (max_steps if by_steps else budget_s) / n_evals
    next_eval = every
    reached = None
    while clock < budget_s and step < max_steps:
        idx = rng.integers(0, len(x), tr["batch"])
        if timed_cosine:
            frac = min(clock / budget_s, 1.0)
            opt.learning_rate = tr["lr"] * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        flow.reset_nfe()
        t0 = time.perf_counter()
        _, _, grads = loss_and_grad(tf.constant(x[idx]))
        apply(grads)
        dt = time.perf_counter() - t0
        clock += dt
        step += 1
        step_times.append(dt)
        nfes.append(flow.nfe)
        if (step if by_steps else clock) >= next_eval or clock >= budget_s \
                or step == max_steps:
            nll = test_nll(flow, x_test)
            curve.append((clock, step, nll))
            log(f"  {name:28s} step {step:5d}  {clock:7.1f}s  test NLL {nll:.4f}")
            next_eval += every
            if target is not None and reached is None and nll <= target:
                reached = clock
                if stop_at_target:
                    break
    steady = step_times[2:] or step_times
    return {"name": name, "steps": step, "train_seconds": clock,
            "first_step_seconds": step_times[0], "median_step_seconds": float(np.median(steady)),
            "nfe_per_step": float(np.median(nfes)), "final_test_nll": curve[-1][2],
            "seconds_to_target": reached, "curve": curve}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stock_epochs", "--stock-epochs", type=int, default=20)
    p.add_argument("--n_train", "--n-train", type=int, default=8192)
    p.add_argument("--n_test", "--n-test", type=int, default=4096)
    p.add_argument("--evals", type=int, default=20, help="test evaluations per run")
    p.add_argument("--ablations", action="store_true",
                   help="also time the one-change-at-a-time configurations")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    a = p.parse_args()
    if a.quick:
        a.stock_epochs, a.n_train, a.n_test, a.evals = 1, 512, 256, 2
    x = sample_moons(a.n_train, seed=0)
    x_test = sample_moons(a.n_test, seed=1)
    entropy = moons_entropy(n=4000 if a.quick else 40_000)[0]

    stock_steps = a.stock_epochs * (a.n_train // 256)
    cfg, tr = stock_config()
    stock = train_timed("stock (tutorial)", cfg, tr, x, x_test, float("inf"), stock_steps,
                        a.evals)
    budget, target = stock["train_seconds"], stock["final_test_nll"]
    runs = [stock]
    if a.ablations:
        s = Part1Settings()
        one_block = dict(num_stacked=1, backbone_kwargs={"hidden": list(s.hidden),
                                                         "activation": "tanh"})
        rk4 = dict(train_solver="rk4", train_solver_kwargs={"num_steps": s.rk4_steps})
        for name, (cfg, tr) in [
            ("stock + exact trace", stock_config(train_trace="exact")),
            ("stock + RNODE reg 0.01", stock_config(reg=0.01)),
            ("stock + 1 block 3x64", stock_config(**one_block)),
            ("1 block + exact + reg", stock_config(train_trace="exact", reg=0.01, **one_block)),
            ("... + RK4 backprop", stock_config(train_trace="exact", reg=0.01, **one_block,
                                                **rk4)),
            ("default without XLA", default_config(jit=False)),
        ]:
            runs.append(train_timed(name, cfg, tr, x, x_test, budget, 10**9, a.evals, target,
                                    stop_at_target=True))
    cfg, tr = default_config()
    default = train_timed("default", cfg, tr, x, x_test, budget, 10**9, a.evals, target)
    runs.append(default)

    print()
    print(f"{'configuration':30s} {'s/step':>8s} {'1st step s':>10s} {'NFE/step':>9s} "
          f"{'steps':>6s} {'s to target':>11s} {'NLL@budget':>10s}")
    for r in runs:
        tt = "-" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        if r is stock:
            tt = f"{stock['train_seconds']:.1f}"
        print(f"{r['name']:30s} {r['median_step_seconds']:8.3f} {r['first_step_seconds']:10.1f} "
              f"{r['nfe_per_step']:9.0f} {r['steps']:6d} {tt:>11s} {r['final_test_nll']:10.4f}")
    to_target = default["seconds_to_target"]
    speedup = stock["train_seconds"] / to_target if to_target else None
    print(f"\nstock budget {budget:.1f}s, target NLL {target:.4f} nats; true entropy "
          f"{entropy:.4f} nats")
    print(f"ratios default/stock: seconds per step "
          f"{default['median_step_seconds'] / stock['median_step_seconds']:.3f}, NFE per step "
          f"{default['nfe_per_step'] / stock['nfe_per_step']:.3f}")
    if speedup:
        print(f"time-to-target speedup: {speedup:.1f}x")
    else:
        print("default did not reach the stock NLL within the budget")
    print(json.dumps({
        "speedup_to_stock_nll": None if speedup is None else round(speedup, 2),
        "stock_seconds": round(stock["train_seconds"], 1),
        "default_seconds_to_stock_nll": None if to_target is None else round(to_target, 1),
        "stock_final_test_nll": round(target, 4),
        "default_test_nll_at_stock_budget": round(default["final_test_nll"], 4),
        "default_kl_at_stock_budget": round(default["final_test_nll"] - entropy, 4),
        "step_time_ratio": round(default["median_step_seconds"] /
                                 stock["median_step_seconds"], 3),
        "nfe_per_step_stock": stock["nfe_per_step"],
        "nfe_per_step_default": default["nfe_per_step"],
        "ablations": {r["name"]: {"s_per_step": round(r["median_step_seconds"], 4),
                                  "nfe_per_step": r["nfe_per_step"],
                                  "s_to_target": r["seconds_to_target"]}
                      for r in runs[1:-1]},
    }))


if __name__ == "__main__":
    main()
