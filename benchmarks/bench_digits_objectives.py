#!/usr/bin/env python
"""The tutorial's MNIST question on its offline stand-in (scikit-learn's 8x8 digits): test bits
per dimension of a dense (dense_unet) and a convolutional (conv_unet) backbone, each trained by
maximum likelihood and by flow matching, for the same wall-clock budget of training.

Every run is `train_parallel.py --model_name digits` (configs/config_digits.json) with
overrides: BACKBONE, OBJECTIVE, TIME_BUDGET_S (MAXEPOCH raised so the budget ends the run,
early stopping off; JIT off: XLA did not finish compiling the convolutional maximum-likelihood
step within 10 minutes on this CPU); bits/dim come from the run's own report (exact trace,
Dormand-Prince, the preprocessing's Jacobian included; held-out digits). Prints the table
and, last, JSON.

    python benchmarks/bench_digits_objectives.py --budget_s 150 --out runs/digits_objectives
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from machine_load import load_record

from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.errors import run_cli
from ffjord_kit.experiments.base import RunOptions
from ffjord_kit.experiments.runner import run_experiment

BACKBONES = {"dense_unet": {"LAYER_SIZE": [128, 64]}, "conv_unet": {}}
OBJECTIVES = ("max_likelihood", "flow_matching")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget_s", type=float, default=150.0, help="training seconds per run")
    p.add_argument("--out", type=Path, default=Path("runs/digits_objectives"))
    p.add_argument("--quick", action="store_true", help="smoke run: 10 s budgets")
    a = p.parse_args()
    budget = 10.0 if a.quick else a.budget_s
    load_start = load_record("start")
    rows = {}
    for backbone, extra in BACKBONES.items():
        for objective in OBJECTIVES:
            run_dir = a.out / f"{backbone}_{objective}"
            shutil.rmtree(run_dir, ignore_errors=True)
            overrides = {"BACKBONE": backbone, "OBJECTIVE": objective, "TIME_BUDGET_S": budget,
                         "MAXEPOCH": 100_000, "EARLYSTOP": 0, "JIT": False, **extra}
            if a.quick:
                overrides.update(MAX_EVENTS=300, NSAMPLES=9, EVAL_ATOL=1e-3, EVAL_RTOL=1e-3)
            opts = RunOptions(model_name="digits", run_dir=str(run_dir), progress=False,
                              overrides=overrides)
            print(f"--- {backbone}, {objective}", flush=True)
            run_experiment(opts, SingleProcess())
            metrics = json.loads((run_dir / "metrics.json").read_text())
            history = json.loads((run_dir / "history.json").read_text())
            rows[f"{backbone}/{objective}"] = {
                "bits_per_dim": metrics["test_bits_per_dim"],
                "stderr": metrics["test_bits_per_dim_stderr"],
                "epochs": len(history["epoch"]), "train_seconds": history["seconds"][-1],
                "best_val_nll": min(v for v in history["val_nll"])}
    load_end = load_record("end")
    print(f"\n{'backbone / objective':34s} {'bits/dim':>9s} {'+-':>6s} {'epochs':>7s} "
          f"{'train s':>8s} {'best val NLL':>12s}")
    for name, r in rows.items():
        print(f"{name:34s} {r['bits_per_dim']:9.3f} {r['stderr']:6.3f} {r['epochs']:7d} "
              f"{r['train_seconds']:8.1f} {r['best_val_nll']:12.2f}")
    print(json.dumps({"budget_s": budget, "runs": rows, "load_start": load_start,
                      "load_end": load_end}))
    return 0


if __name__ == "__main__":
    run_cli(main)
