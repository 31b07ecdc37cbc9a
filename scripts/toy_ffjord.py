#!/usr/bin/env python
"""Tutorial Part 1: train an FFJORD on two moons and answer the tutorial's three questions.

Trains by flow matching then a short maximum-likelihood fine-tune (the default), or by maximum
likelihood throughout (--objective max_likelihood); either way the model is evaluated with
FFJORD's exact likelihood. Writes OUT/answers.json, OUT/history.json, OUT/model/ and plots
(base and flow samples, the model density, trajectories, loss curve).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffjord_kit.cli_args import int_list, positive_float, positive_int
from ffjord_kit.errors import run_cli
from ffjord_kit.fileio import ensure_writable_dir
from ffjord_kit.flows.flow_matching import COUPLINGS, OBJECTIVES
from ffjord_kit.flows.trace import TRACE_ESTIMATORS
from ffjord_kit.toys.tutorial_part1 import (
    DEFAULT_OBJECTIVE,
    Part1Settings,
    part1_settings,
    quick_settings,
    run,
    summary_lines,
)

# Flags whose default depends on the objective's recipe (None: the recipe's value).
RECIPE_FLAGS = ("epochs", "batch_size", "lr", "finetune_epochs", "draws")


def main() -> int:
    d = Part1Settings()
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--objective", choices=OBJECTIVES, default=DEFAULT_OBJECTIVE,
                   help="flow_matching: regress the field on straight paths (no solver in "
                        "training), then fine-tune by likelihood; max_likelihood: FFJORD's "
                        "likelihood through ODE solves in every step")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: the objective's recipe)")
    p.add_argument("--batch_size", "--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="peak Adam learning rate")
    p.add_argument("--finetune_epochs", "--finetune-epochs", type=int, default=None,
                   help="flow matching: the last N epochs train by maximum likelihood")
    p.add_argument("--draws", type=positive_int, default=None,
                   help="flow matching: path samples per data point and step")
    p.add_argument("--coupling", choices=COUPLINGS, default=d.coupling,
                   help="flow matching: pair base draws with data independently or by "
                        "minibatch optimal transport")
    p.add_argument("--sigma_min", "--sigma-min", type=float, default=d.sigma_min,
                   help="flow matching: width of the path's end around each data point")
    p.add_argument("--stacked", type=positive_int, default=d.stacked, help="FFJORD blocks")
    p.add_argument("--hidden", type=int_list, default=d.hidden,
                   help="hidden layer widths of each block's MLP, comma separated")
    p.add_argument("--trace", choices=TRACE_ESTIMATORS, default=d.trace,
                   help="trace estimator of maximum-likelihood training (evaluation is "
                        "always exact)")
    p.add_argument("--solver", choices=["rk4", "dopri5"], default=d.solver,
                   help="ODE solver of maximum-likelihood training")
    p.add_argument("--rk4_steps", "--rk4-steps", type=positive_int, default=d.rk4_steps)
    p.add_argument("--atol", type=positive_float, default=d.atol,
                   help="absolute tolerance of the adaptive (evaluation) solver")
    p.add_argument("--rtol", type=positive_float, default=d.rtol)
    p.add_argument("--reg", type=float, default=d.kinetic,
                   help="RNODE weight for both kinetic energy and Jacobian norm (maximum "
                        "likelihood epochs)")
    p.add_argument("--no_jit", "--no-jit", action="store_true", help="disable XLA compilation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("runs/toy_ffjord"))
    p.add_argument("--quick", action="store_true", help="smoke run of about a minute")
    a = p.parse_args()
    if a.reg < 0:
        p.error("--reg must be >= 0")
    if not 0 <= a.sigma_min < 1:
        p.error("--sigma_min must be in [0, 1)")
    if a.finetune_epochs is not None and a.finetune_epochs < 0:
        p.error("--finetune_epochs must be >= 0")
    if a.objective == "max_likelihood" and (a.finetune_epochs or (a.draws or 1) > 1):
        p.error("--finetune_epochs and --draws belong to --objective flow_matching")
    overrides = dict(stacked=a.stacked, hidden=a.hidden, trace=a.trace, solver=a.solver,
                     rk4_steps=a.rk4_steps, atol=a.atol, rtol=a.rtol, kinetic=a.reg,
                     jacobian=a.reg, jit_compile=not a.no_jit, seed=a.seed,
                     coupling=a.coupling, sigma_min=a.sigma_min)
    # In quick mode only flags the user changed from their defaults override the smoke sizes.
    if a.quick:
        overrides = {k: v for k, v in overrides.items() if v != getattr(d, k)}
    overrides.update({k: getattr(a, k) for k in RECIPE_FLAGS if getattr(a, k) is not None})
    make = quick_settings if a.quick else part1_settings
    try:
        settings = make(a.objective, **overrides)
    except ValueError as exc:
        p.error(str(exc))
    out = ensure_writable_dir(a.out)
    answers = run(settings, out)
    for line in summary_lines(answers):
        print(line)
    print(f"wrote {out / 'answers.json'} and plots in {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
