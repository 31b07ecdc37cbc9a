"""KLM timing flow throughput: training samples/s and conditional sampling samples/s (raw
and with physical-support resampling) at batch sizes 100 to 10^5, measured side by side.

  python benchmarks/bench_klm.py                        # notes' model (configs/klm.json)
  python benchmarks/bench_klm.py --config configs/klm_cpu.json --model runs/klm_cpu/model
  python benchmarks/bench_klm.py --small                # smoke run: tiny model, 2 sizes

Uses a GPU when TensorFlow sees one. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.errors import UserError, run_cli
from ffjord_kit.flows.autoregressive_spline import AutoregressiveSplineConfig
from ffjord_kit.klm.config import load_config
from ffjord_kit.klm.model import KLMTimingModel
from ffjord_kit.klm.preprocessing import KLMPreprocessing
from ffjord_kit.klm.sampling import sample_physical
from ffjord_kit.klm.synthetic import generate_table
from ffjord_kit.train_step import make_apply, make_loss_and_grad

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn, min_seconds: float, max_reps: int) -> float:
    """Seconds per call (median-free mean over >= min_seconds), after one warm-up call."""
    fn()
    reps, start = 0, time.perf_counter()
    while reps < max_reps and (reps == 0 or time.perf_counter() - start < min_seconds):
        fn()
        reps += 1
    return (time.perf_counter() - start) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "klm.json"),
                    help="config whose model section is benchmarked")
    ap.add_argument("--model", help="trained model folder (realistic acceptance rate)")
    ap.add_argument("--batch_sizes", "--batch-sizes", default="100,1000,10000,100000")
    ap.add_argument("--min_seconds", "--min-seconds",
                    type=float, default=2.0, help="timing per point")
    ap.add_argument("--max_reps", "--max-reps", type=int, default=50)
    ap.add_argument("--min_time", "--min-time",
                    type=float, default=0.0, help="physical minimum time [ns]")
    ap.add_argument("--small", action="store_true", help="smoke run: tiny model, 2 sizes")
    args = ap.parse_args()

    config = load_config(args.config)
    model_cfg = config.model
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if args.small:
        model_cfg = AutoregressiveSplineConfig(num_layers=2, hidden_units=16, hidden_layers=2)
        sizes, args.min_seconds, args.max_reps = [100, 1000], 0.2, 5
    if min(sizes) < 1:
        raise UserError("--batch-sizes must be positive integers")
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU: {gpus[0].name}" if gpus else "CPU"
    data = generate_table(max(sizes) * 2, seed=11)
    if args.model:
        model = KLMTimingModel.load(args.model)
        model_cfg = model.flow.config
    else:
        model = KLMTimingModel.create(model_cfg, KLMPreprocessing.fit(data))
    # The Trainer's step (Adam with the config's L2 weight decay) on a copy of the weights:
    # the benchmark must not change a loaded model.
    copy = type(model.flow)(model_cfg)
    for target, source in zip(copy.weight_variables(), model.flow.weight_variables(),
                              strict=True):
        target.assign(source)
    train_step = SingleProcess().train_step(
        make_loss_and_grad(copy),
        make_apply(tf_keras.optimizers.Adam(config.training.learning_rate),
                   copy.trainable_variables, weight_decay=config.training.weight_decay))
    u_all = model.prep.encode_time(data.time)
    c_all = model.prep.encode_context(data.context)
    rng = np.random.default_rng(0)

    rows = []
    print(f"device: {device}; model: {model_cfg.num_layers} layers x {model_cfg.hidden_layers}"
          f" hidden x {model_cfg.hidden_units} units, {model_cfg.num_bins} bins"
          f"{' (trained: ' + args.model + ')' if args.model else ' (untrained)'}")
    header = (f"{'batch':>7} {'train/s':>10} {'sample raw/s':>13} {'sample phys/s':>14} "
              f"{'phys/raw':>9} {'acceptance':>10}")
    print(header)
    for b in sizes:
        u, c, ctx = u_all[:b], c_all[:b], data.context[:b]
        t_train = _timed(lambda u=u, c=c: train_step(u, c)[0].numpy(), args.min_seconds,
                         args.max_reps)
        t_raw = _timed(lambda ctx=ctx, b=b: model.sample_raw(ctx, rng, batch_size=b),
                       args.min_seconds, args.max_reps)
        accs = []

        def phys(ctx=ctx, b=b, accs=accs):
            accs.append(sample_physical(model, ctx, rng, args.min_time, 100, b).acceptance_rate)

        t_phys = _timed(phys, args.min_seconds, args.max_reps)
        row = {"batch": b, "train_samples_per_s": b / t_train,
               "sample_raw_per_s": b / t_raw, "sample_physical_per_s": b / t_phys,
               "physical_over_raw": t_raw / t_phys, "acceptance_rate": float(np.mean(accs))}
        rows.append(row)
        print(f"{b:>7} {row['train_samples_per_s']:>10.0f} {row['sample_raw_per_s']:>13.0f} "
              f"{row['sample_physical_per_s']:>14.0f} {row['physical_over_raw']:>9.3f} "
              f"{row['acceptance_rate']:>10.5f}")
    best_train = max(rows, key=lambda r: r["train_samples_per_s"])
    best_sample = max(rows, key=lambda r: r["sample_physical_per_s"])
    print(json.dumps({
        "benchmark": "klm", "device": device, "model": model_cfg.to_dict(),
        "trained_model": args.model, "min_time_ns": args.min_time, "rows": rows,
        "best_train_samples_per_s": best_train["train_samples_per_s"],
        "best_train_batch": best_train["batch"],
        "best_sample_physical_per_s": best_sample["sample_physical_per_s"],
        "best_sample_batch": best_sample["batch"]}))
    return 0


if __name__ == "__main__":
    run_cli(main)
