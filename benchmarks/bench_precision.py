"""bfloat16 against float32 for the FlashSim spline flow: does a short training reach the same
validation NLL, and how far apart are the two log_probs of one trained model?

Synthetic jets (flashsim/synthetic.py, stated as such) through the FlashSim preprocessing; the
CPU-sized jets model (configs/flashsim_jets_cpu.json) trained for `--steps` Adam steps at batch
2048 in each precision from the same initial weights, for `--seeds` data-order seeds, so the
precision difference is compared with the seed-to-seed spread and with the validation NLL's
standard error. Then log_prob of the float32-trained model evaluated in bfloat16 (same weights)
against float32: the per-event |difference| (median, 99th percentile, max) is the tolerance the
tests use. Time per step is printed too (on a CPU without AVX512_BF16 bfloat16 is emulated).

  python benchmarks/bench_precision.py                 # 300 steps x 2 seeds x 2 precisions
  python benchmarks/bench_precision.py --small         # smoke run
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_record  # noqa: E402
from side_by_side import bf16_hardware  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--val_rows", "--val-rows", type=int, default=20_000)
    ap.add_argument("--small", action="store_true", help="smoke run (20 steps, 1 seed)")
    args = ap.parse_args()
    if args.small:
        args.steps, args.seeds, args.val_rows = 20, 1, 4000
    start_load = load_record("start")

    import tensorflow as tf
    import tf_keras

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flashsim.config import load_config
    from ffjord_kit.flashsim.preprocessing import ModelTransform
    from ffjord_kit.flashsim.schemas import get_schema
    from ffjord_kit.flashsim.synthetic import synthetic_rows
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow
    from ffjord_kit.train_step import make_apply, make_loss_and_grad

    schema = get_schema("jets")
    cfg = load_config(CONFIGS / "flashsim_jets_cpu.json").flow
    rows = synthetic_rows("jets", args.steps * args.batch // 4 + args.val_rows,
                          np.random.default_rng(0))  # synthetic jets, not CMS data
    c_cols = len(schema.condition_names)
    transform = ModelTransform.fit(schema, rows)
    rng = np.random.default_rng(1)
    x_all = transform.targets(rows[:, c_cols:], rng)
    c_all = transform.conditions(rows[:, :c_cols])
    x_val, c_val = x_all[:args.val_rows], c_all[:args.val_rows]
    x_fit, c_fit = x_all[args.val_rows:], c_all[args.val_rows:]

    results = {}
    for precision in ("float32", "bfloat16"):
        for seed in range(args.seeds):
            flow = SplineCouplingFlow(replace(cfg, precision=precision))
            step = SingleProcess().train_step(
                make_loss_and_grad(flow),
                make_apply(tf_keras.optimizers.Adam(1e-3), flow.trainable_variables))
            order = np.random.default_rng(100 + seed)
            seconds = 0.0
            for i in range(args.steps):
                idx = order.integers(0, len(x_fit), args.batch)
                t0 = time.perf_counter()
                step(tf.constant(x_fit[idx]), tf.constant(c_fit[idx]))[0].numpy()
                if i > 0:  # the first step traces the graph
                    seconds += time.perf_counter() - t0
            seconds *= args.steps / max(args.steps - 1, 1)
            nll = -flow.log_prob(x_val, condition=c_val).numpy()
            results[(precision, seed)] = (flow, float(nll.mean()),
                                          float(nll.std() / np.sqrt(len(nll))), seconds)
            print(f"{precision:9s} seed {seed}: val NLL {nll.mean():.4f} +- "
                  f"{nll.std() / np.sqrt(len(nll)):.4f} ({seconds / args.steps * 1e3:.0f} ms "
                  f"per step)", flush=True)

    # log_prob agreement: the float32-trained model evaluated with bfloat16 conditioners.
    f32 = results[("float32", 0)][0]
    b16 = SplineCouplingFlow(replace(cfg, precision="bfloat16"))
    for src, dst in zip(f32.weight_variables(), b16.weight_variables(), strict=True):
        dst.assign(src)
    diff = np.abs(b16.log_prob(x_val, condition=c_val).numpy()
                  - f32.log_prob(x_val, condition=c_val).numpy())
    end_load = load_record("end")

    def mean_nll(p):
        return np.array([results[(p, s)][1] for s in range(args.seeds)])

    n32, n16 = mean_nll("float32"), mean_nll("bfloat16")
    se = max(v[2] for v in results.values())
    spread = float(np.std(n32, ddof=1)) if args.seeds > 1 else None
    t32 = np.mean([results[("float32", s)][3] for s in range(args.seeds)])
    t16 = np.mean([results[("bfloat16", s)][3] for s in range(args.seeds)])
    print(f"\n{'precision':10s} {'val NLL (per seed)':>28s} {'mean':>8s} {'ms/step':>8s}")
    for p, n, t in (("float32", n32, t32), ("bfloat16", n16, t16)):
        print(f"{p:10s} {' '.join(f'{v:.4f}' for v in n):>28s} {n.mean():8.4f} "
              f"{t / args.steps * 1e3:8.0f}")
    print(f"bfloat16 - float32: {n16.mean() - n32.mean():+.4f} nats; val NLL standard error "
          f"{se:.4f}; float32 seed-to-seed std "
          f"{'-' if spread is None else f'{spread:.4f}'}")
    print(f"log_prob, same weights, bfloat16 vs float32: |diff| median {np.median(diff):.4f}, "
          f"99% {np.percentile(diff, 99):.4f}, max {diff.max():.4f} nats per event")
    print(f"bfloat16 hardware: {'yes' if bf16_hardware() else 'no (emulated: slower)'}; "
          "synthetic jets")
    print(json.dumps({
        "benchmark": "precision", "steps": args.steps, "seeds": args.seeds,
        "val_nll_float32": [round(v, 4) for v in n32],
        "val_nll_bfloat16": [round(v, 4) for v in n16],
        "val_nll_se": round(se, 4),
        "seed_std_float32": None if spread is None else round(spread, 4),
        "bf16_minus_fp32": round(float(n16.mean() - n32.mean()), 4),
        "log_prob_diff_median": round(float(np.median(diff)), 5),
        "log_prob_diff_p99": round(float(np.percentile(diff, 99)), 5),
        "log_prob_diff_max": round(float(diff.max()), 5),
        "ms_per_step": {"float32": round(t32 / args.steps * 1e3),
                        "bfloat16": round(t16 / args.steps * 1e3)},
        "bf16_hardware": bf16_hardware(), "load_start": start_load, "load_end": end_load}))
    return 0


if __name__ == "__main__":
    from ffjord_kit.errors import run_cli

    run_cli(main)
