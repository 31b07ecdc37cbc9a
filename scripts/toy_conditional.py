#!/usr/bin/env python
"""Tutorial Part 2: conditional FFJORD flows p(x | c) and inference on the condition c.

Discrete toy (two Gaussians, c in {0, 1}): samples per condition, base-space images, and
classification with p(c | x) against the Bayes-optimal accuracy. Continuous toy
(x ~ N((c, c), I)): samples at several c, per-event and joint maximum-likelihood fits of c with
uncertainties, validated on known draws against the analytic estimator mean(x).

Writes OUT/answers.json, OUT/history.json, OUT/discrete_model/, OUT/continuous_model/ and plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffjord_kit.cli_args import int_list, positive_float, positive_int
from ffjord_kit.errors import run_cli
from ffjord_kit.fileio import ensure_writable_dir
from ffjord_kit.flows.flow_matching import OBJECTIVES
from ffjord_kit.toys.tutorial_part2 import (
    Part2Settings,
    part2_settings,
    quick_settings,
    run,
    summary_lines,
)


def main() -> int:
    d = Part2Settings()
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--objective", choices=OBJECTIVES, default="max_likelihood",
                   help="max_likelihood: FFJORD's likelihood through ODE solves; "
                        "flow_matching: straight-path regression, then a likelihood fine-tune")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"training epochs of both flows (default: the objective's recipe; "
                        f"max_likelihood: discrete {d.discrete_epochs}, continuous "
                        f"{d.continuous_epochs})")
    p.add_argument("--n_fits", "--n-fits", type=positive_int, default=d.n_fits,
                   help="known draws fitted one by one")
    p.add_argument("--n_joint", "--n-joint", type=positive_int, default=d.n_joint,
                   help="events in the joint fit of one condition")
    p.add_argument("--starts", type=positive_int, default=d.starts,
                   help="starting points per fit")
    p.add_argument("--fit_steps", "--fit-steps", type=int, default=d.fit_steps,
                   help="Adam steps per fit before Newton polishing")
    p.add_argument("--batch_size", "--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak Adam learning rate (default: the objective's recipe)")
    p.add_argument("--hidden", type=int_list, default=d.hidden,
                   help="hidden layer widths of each block's MLP, comma separated")
    p.add_argument("--stacked", type=positive_int, default=d.stacked, help="FFJORD blocks")
    p.add_argument("--rk4_steps", "--rk4-steps", type=positive_int, default=d.rk4_steps,
                   help="RK4 steps per block in training")
    p.add_argument("--no_jit", "--no-jit", action="store_true", help="disable XLA compilation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("runs/toy_conditional"))
    p.add_argument("--quick", action="store_true", help="smoke run (under a minute of work)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when an acceptance check fails")
    a = p.parse_args()
    if a.fit_steps < 0:
        p.error("--fit-steps must be >= 0")
    overrides = dict(n_fits=a.n_fits, n_joint=a.n_joint, starts=a.starts,
                     fit_steps=a.fit_steps, batch_size=a.batch_size, hidden=a.hidden,
                     stacked=a.stacked, rk4_steps=a.rk4_steps, jit_compile=not a.no_jit,
                     seed=a.seed)
    if a.quick:  # only flags changed from their defaults override the smoke sizes
        overrides = {k: v for k, v in overrides.items() if v != getattr(d, k)}
    if a.epochs is not None:
        overrides.update(discrete_epochs=a.epochs, continuous_epochs=a.epochs)
    if a.lr is not None:
        overrides["lr"] = a.lr
    try:
        settings = (quick_settings if a.quick else part2_settings)(a.objective, **overrides)
    except ValueError as exc:
        p.error(str(exc))
    out = ensure_writable_dir(a.out)
    answers = run(settings, out)
    for line in summary_lines(answers):
        print(line)
    print(f"wrote {out / 'answers.json'} and plots in {out}")
    return 1 if a.strict and not all(answers["acceptance"].values()) else 0


if __name__ == "__main__":
    run_cli(main)
