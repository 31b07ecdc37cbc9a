#!/usr/bin/env python
"""Two moons: the project's default FFJORD training path against the tutorial's ("stock").

Every configuration trains in this one process on the same data; the clock counts training
only (tracing and XLA compilation included, test evaluation excluded). The test NLL is always
measured the same way: exact trace, Dormand-Prince at atol = rtol = 1e-5, on held-out points.

- stock: 4 FFJORD blocks, MLPs of 7 x Dense(8, tanh), Dormand-Prince atol 1e-5 / rtol 1e-3
  with TFP's adjoint gradients, Hutchinson (Gaussian) trace, plain tf.function, batch 256,
  Adam 1e-2, 20 epochs of 8192 points.
- ablations, one change at a time towards the default (what each buys);
- default: the project's maximum-likelihood configuration (Part1Settings' defaults);
- flow matching: Part 1's flow-matching recipe (tutorial_part1.RECIPES) for the whole budget,
  and for its flow-matching epochs followed by its maximum-likelihood fine-tune until the
  budget ends (what `toy_ffjord.py` runs by default).

Printed: seconds per step, function evaluations per step, time to reach the stock run's final
test NLL, the test NLL and the paired KL to the exact density after the stock run's wall-clock
budget, and the adaptive solver's function evaluations to sample; the load average at start and
end; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras
from machine_load import load_record

from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.flows.flow_matching import FlowMatching
from ffjord_kit.toys.moons import moons_entropy, moons_log_density, sample_moons
from ffjord_kit.toys.tutorial_part1 import Part1Settings, part1_settings
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
    return float(-np.mean(batched_log_prob(flow, x_test)))


def batched_log_prob(flow, x) -> np.ndarray:
    return np.concatenate([flow.log_prob(x[i:i + 2048]).numpy() for i in range(0, len(x), 2048)])


def paired_kl(flow, x_test, log_true) -> tuple[float, float]:
    """KL(p || q) estimated on the test points: mean(log p - log q) and its standard error."""
    diff = log_true - batched_log_prob(flow, x_test)
    return float(diff.mean()), float(diff.std() / np.sqrt(len(diff)))


def sampling_nfe(flow, n: int = 512) -> int:
    """Function evaluations of the adaptive solver to draw n samples (exact log-det along)."""
    flow.reset_nfe()
    flow.to_data(np.random.default_rng(7).standard_normal((n, 2)).astype(np.float32))
    return flow.nfe


@dataclass
class Phase:
    """One stretch of training: a compiled step, its batch, learning-rate peak and how long
    it runs (max_steps and/or until the run's budget). The learning rate decays by cosine to
    5% over the phase's steps, or over its share of the budget when only time bounds it."""

    loss_and_grad: Callable
    lr: float
    batch: int
    max_steps: int = 10**9
    clip: float | None = 1.0
    cosine: bool = True
    eval_every_steps: int | None = None  # until the target is reached; else the clock's


def run_phases(name, flow, phases, x, x_test, budget_s, n_evals, target=None,
               stop_at_target=False, log=print) -> dict:
    """Train through `phases` until `budget_s` seconds of training; evaluate the test NLL on
    a clock schedule (n_evals over the budget) or every `eval_every_steps` of a phase."""
    rng = np.random.default_rng(0)
    clock, step, step_times, nfes, curve, reached = 0.0, 0, [], [], [], None
    every = budget_s / n_evals
    next_eval = every
    for phase in phases:
        opt = tf_keras.optimizers.Adam(phase.lr)
        apply = make_apply(opt, flow.trainable_variables, phase.clip)
        p_start, p_step = clock, 0
        bounded_by_steps = phase.max_steps < 10**9
        while clock < budget_s and p_step < phase.max_steps:
            if phase.cosine:
                frac = (p_step / phase.max_steps if bounded_by_steps else
                        (clock - p_start) / max(budget_s - p_start, 1e-9))
                opt.learning_rate = phase.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
            idx = rng.integers(0, len(x), phase.batch)
            flow.reset_nfe()
            t0 = time.perf_counter()
            _, _, grads = phase.loss_and_grad(tf.constant(x[idx]))
            apply(grads)
            dt = time.perf_counter() - t0
            clock, step, p_step = clock + dt, step + 1, p_step + 1
            step_times.append((phase, dt))
            nfes.append(flow.nfe)
            # Fine evaluation (every eval_every_steps) until the target is reached, then
            # the clock schedule.
            fine = phase.eval_every_steps and reached is None
            due = p_step % phase.eval_every_steps == 0 if fine else clock >= next_eval
            last = clock >= budget_s or p_step == phase.max_steps
            if due or last:
                nll = test_nll(flow, x_test)
                curve.append((clock, step, nll))
                log(f"  {name:34s} step {step:5d}  {clock:7.1f}s  test NLL {nll:.4f}")
                while next_eval <= clock:
                    next_eval += every
                if target is not None and reached is None and nll <= target:
                    reached = clock
                    if stop_at_target:
                        return _summary(name, flow, step, clock, step_times, nfes, curve,
                                        reached, phases)
    return _summary(name, flow, step, clock, step_times, nfes, curve, reached, phases)


def _summary(name, flow, steps, clock, step_times, nfes, curve, reached, phases) -> dict:
    first = [dt for p, dt in step_times if p is phases[0]]
    steady = first[2:] or first
    return {"name": name, "flow": flow, "steps": steps, "train_seconds": clock,
            "first_step_seconds": first[0], "median_step_seconds": float(np.median(steady)),
            "nfe_per_step": float(np.median(nfes)), "final_test_nll": curve[-1][2],
            "seconds_to_target": reached, "curve": curve}


def train_timed(name, cfg, tr, x, x_test, budget_s, max_steps, n_evals, target=None,
                stop_at_target=False, log=print) -> dict:
    """One maximum-likelihood phase with the row's settings (stock, ablations, default)."""
    flow = ContinuousFlow(cfg)
    # Stock: constant learning rate for max_steps; the others: cosine over the budget.
    phase = Phase(make_loss_and_grad(flow, tr["reg"], tr["reg"], tr["jit"]), tr["lr"],
                  tr["batch"], max_steps=max_steps, clip=tr["clip"], cosine=tr["cosine"])
    by_steps = not np.isfinite(budget_s)
    if by_steps:
        phase.eval_every_steps = max(max_steps // n_evals, 1)
        budget_s = float("inf")
    return run_phases(name, flow, [phase], x, x_test, budget_s, n_evals, target,
                      stop_at_target, log)


def flow_matching_row(name, x, x_test, budget_s, n_evals, target, fm_steps=None, log=print
                      ) -> dict:
    """Flow matching with Part 1's recipe (ffjord_kit.toys.tutorial_part1.RECIPES), for the
    whole budget (fm_steps None) or for fm_steps steps followed by its maximum-likelihood
    fine-tune (RK4, exact trace, RNODE) for the rest of the budget."""
    s = part1_settings("flow_matching")
    cfg = s.flow_config().to_dict()
    cfg.update(EVAL)
    flow = ContinuousFlow(FlowConfig(**cfg))
    fm = make_loss_and_grad(flow, jit_compile=True, objective="flow_matching",
                            flow_matching=FlowMatching(s.sigma_min, s.coupling, draws=s.draws))
    phases = [Phase(fm, s.lr, s.batch_size, eval_every_steps=250,
                    **({"max_steps": fm_steps} if fm_steps else {}))]
    if fm_steps:
        ml = make_loss_and_grad(flow, s.kinetic, s.jacobian, jit_compile=True)
        phases.append(Phase(ml, s.finetune_lr, s.batch_size))
    return run_phases(name, flow, phases, x, x_test, budget_s, n_evals, target, log=log)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stock_epochs", "--stock-epochs", type=int, default=20)
    p.add_argument("--n_train", "--n-train", type=int, default=8192)
    p.add_argument("--n_test", "--n-test", type=int, default=4096)
    p.add_argument("--evals", type=int, default=20, help="test evaluations per run")
    p.add_argument("--fm_steps", "--fm-steps", type=int, default=None,
                   help="flow-matching steps before the fine-tune (default: Part 1's recipe)")
    p.add_argument("--ablations", action="store_true",
                   help="also time the one-change-at-a-time configurations")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    a = p.parse_args()
    load_start = load_record("start")
    recipe = part1_settings("flow_matching")
    steps_per_epoch = a.n_train // recipe.batch_size
    fm_steps = a.fm_steps or (recipe.epochs - recipe.finetune_epochs) * steps_per_epoch
    if a.quick:
        a.stock_epochs, a.n_train, a.n_test, a.evals, fm_steps = 1, 512, 256, 2, 20
    x = sample_moons(a.n_train, seed=0)
    x_test = sample_moons(a.n_test, seed=1)
    log_true = moons_log_density(x_test)
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
    default = train_timed("max likelihood (default path)", cfg, tr, x, x_test, budget, 10**9,
                          a.evals, target)
    fm_only = flow_matching_row("flow matching", x, x_test, budget, a.evals, target)
    fm_ft = flow_matching_row(f"flow matching {fm_steps} + ML fine-tune", x, x_test, budget,
                              a.evals, target, fm_steps=fm_steps)
    runs += [default, fm_only, fm_ft]
    for r in [stock, default, fm_only, fm_ft]:
        r["kl"], r["kl_err"] = paired_kl(r["flow"], x_test, log_true)
        r["sampling_nfe"] = sampling_nfe(r["flow"])
    load_end = load_record("end")

    print()
    print(f"{'configuration':38s} {'s/step':>7s} {'1st s':>6s} {'NFE/st':>6s} {'steps':>6s} "
          f"{'s to target':>11s} {'speedup':>7s} {'NLL@budget':>10s} {'KL@budget':>16s} "
          f"{'sample NFE':>10s}")
    for r in runs:
        tt = r["seconds_to_target"] if r is not stock else stock["train_seconds"]
        speed = "-" if tt is None else f"{stock['train_seconds'] / tt:.1f}x"
        kl = f"{r['kl']:.4f}+-{r['kl_err']:.4f}" if "kl" in r else "-"
        print(f"{r['name']:38s} {r['median_step_seconds']:7.4f} {r['first_step_seconds']:6.1f} "
              f"{r['nfe_per_step']:6.0f} {r['steps']:6d} "
              f"{'-' if tt is None else f'{tt:.1f}':>11s} {speed:>7s} "
              f"{r['final_test_nll']:10.4f} {kl:>16s} {r.get('sampling_nfe', '-'):>10}")
    print(f"\nstock budget {budget:.1f}s, target NLL {target:.4f} nats; true entropy "
          f"{entropy:.4f} nats; KL: paired estimate on the {a.n_test} test points; sample NFE:"
          f" adaptive-solver evaluations for 512 samples; s/step of the first phase")

    def speedup(r):
        return None if not r["seconds_to_target"] else \
            round(stock["train_seconds"] / r["seconds_to_target"], 2)

    def row(r):
        return {"s_per_step": round(r["median_step_seconds"], 4),
                "s_to_stock_nll": None if r["seconds_to_target"] is None
                else round(r["seconds_to_target"], 2),
                "speedup_to_stock_nll": speedup(r),
                "test_nll_at_stock_budget": round(r["final_test_nll"], 4),
                "kl_at_stock_budget": round(r["kl"], 4), "kl_stat_error": round(r["kl_err"], 4),
                "sampling_nfe": r["sampling_nfe"]}

    print(json.dumps({
        "stock_seconds": round(stock["train_seconds"], 1),
        "stock_final_test_nll": round(target, 4),
        "speedup_to_stock_nll": speedup(default),
        "fm_speedup_to_stock_nll": speedup(fm_only),
        "fm_finetune_kl_at_stock_budget": round(fm_ft["kl"], 4),
        "stock": row(stock), "default": row(default), "flow_matching": row(fm_only),
        "flow_matching_finetune": row(fm_ft),
        "ablations": {r["name"]: {"s_per_step": round(r["median_step_seconds"], 4),
                                  "nfe_per_step": r["nfe_per_step"],
                                  "s_to_target": r["seconds_to_target"]}
                      for r in runs[1:-3]},
        "load_start": load_start, "load_end": load_end,
    }))


if __name__ == "__main__":
    main()
