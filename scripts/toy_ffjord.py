#!/usr/bin/env python
"""Tutorial Part 1: train an FFJORD on two moons and answer the tutorial's three questions.

Writes OUT/answers.json, OUT/history.json, OUT/model/ and plots (base and flow samples, the
model density, trajectories, loss curve).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffjord_kit.cli_args import int_list, positive_float, positive_int
from ffjord_kit.errors import run_cli
from ffjord_kit.fileio import ensure_writable_dir
from ffjord_kit.flows.trace import TRACE_ESTIMATORS
from ffjord_kit.toys.tutorial_part1 import Part1Settings, quick_settings, run, summary_lines


def main() -> int:
    d = Part1Settings()
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch_size", "--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr, help="peak Adam learning rate")
    p.add_argument("--stacked", type=positive_int, default=d.stacked, help="FFJORD blocks")
    p.add_argument("--hidden", type=int_list, default=d.hidden,
                   help="hidden layer widths of each block's MLP, comma separated")
    p.add_argument("--trace", choices=TRACE_ESTIMATORS, default=d.trace,
                   help="trace estimator used in training (evaluation is always exact)")
    p.add_argument("--solver", choices=["rk4", "dopri5"], default=d.solver,
                   help="training ODE solver")
    p.add_argument("--rk4_steps", "--rk4-steps", type=positive_int, default=d.rk4_steps)
    p.add_argument("--atol", type=positive_float, default=d.atol,
                   help="absolute tolerance of the adaptive (evaluation) solver")
    p.add_argument("--rtol", type=positive_float, default=d.rtol)
    p.add_argument("--reg", type=float, default=d.kinetic,
                   help="RNODE weight for both kinetic energy and Jacobian norm")
    p.add_argument("--no_jit", "--no-jit", action="store_true", help="disable XLA compilation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("runs/toy_ffjord"))
    p.add_argument("--quick", action="store_true", help="smoke run of about a minute")
    a = p.parse_args()
    if a.reg < 0:
        p.error("--reg must be >= 0")
    overrides = dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, stacked=a.stacked,
                     hidden=a.hidden, trace=a.trace, solver=a.solver, rk4_steps=a.rk4_steps,
                     atol=a.atol, rtol=a.rtol, kinetic=a.reg, jacobian=a.reg,
                     jit_compile=not a.no_jit, seed=a.seed)
    # In quick mode only flags the user changed from their defaults override the smoke sizes.
    if a.quick:
        changed = {k: v for k, v in overrides.items() if v != getattr(d, k)}
        settings = quick_settings(**changed)
    else:
        settings = Part1Settings(**overrides)
    out = ensure_writable_dir(a.out)
    answers = run(settings, out)
    for line in summary_lines(answers):
        print(line)
    print(f"wrote {out / 'answers.json'} and plots in {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
