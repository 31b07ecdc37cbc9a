"""Calorimeter FFJORD throughput per backbone: training samples/s and showers generated/s.

For each backbone (the tutorial's dense encoder-decoder `dense_unet` and the per-layer
convolutional `calorimeter_branches`), builds a conditional `ContinuousFlow` on the 507-D
CaloFlow features of synthetic photon showers and measures, in the same run:

- training: compiled loss + gradient + Adam update on batches of `--batch` showers (train
  solver RK4 with `--train_steps` steps, Rademacher Hutchinson trace, as the training configs
  configs/config_calorimeter*.json), samples/s after warm-up;
- generation: batched `flow.forward` of base draws under `tf.function` (eval solver RK4 with
  `--sample_steps` steps; Hutchinson trace for the log-determinant that TFP computes alongside)
  followed by the inverse preprocessing to showers in GeV, showers/s.

Uses a GPU when TensorFlow sees one. Prints a table with ratios to the first backbone and, as
its last line, one JSON object with the headline figures.

    python benchmarks/bench_calorimeter.py --quick          # smoke run, seconds on a CPU
    python benchmarks/bench_calorimeter.py                  # default sizes (use a GPU)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_record  # noqa: E402

import ffjord_kit  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from ffjord_kit.calorimeter.preprocessing import postprocess, preprocess
from ffjord_kit.calorimeter.synthetic import generate_showers
from ffjord_kit.errors import UserError, run_cli

BACKBONE_KWARGS = {
    "dense_unet": lambda a: {"layer_sizes": a.layer_sizes, "activation": "tanh"},
    "calorimeter_branches": lambda a: {"channels": a.channels, "activation": "tanh"},
}


def _import_flow():
    """ContinuousFlow, FlowConfig and make_loss_and_grad, imported late (they load TF)."""
    try:
        from ffjord_kit import backbones  # noqa: F401  (registers the backbones)
        from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
        from ffjord_kit.train_step import make_apply, make_loss_and_grad
    except ImportError as exc:
        raise UserError(f"the FFJORD model is not available yet ({exc}); benchmark "
                        "pending") from None
    return ContinuousFlow, FlowConfig, make_loss_and_grad, make_apply


def bench_backbone(name: str, args, features: np.ndarray, condition: np.ndarray) -> dict:
    import tensorflow as tf
    import tf_keras

    ContinuousFlow, FlowConfig, make_loss_and_grad, make_apply = _import_flow()
    config = FlowConfig(dim=features.shape[1], condition_dim=1, num_stacked=args.num_stacked,
                        backbone=name, backbone_kwargs=BACKBONE_KWARGS[name](args),
                        train_solver="rk4", train_solver_kwargs={"num_steps": args.train_steps},
                        train_trace="hutchinson_rademacher", eval_solver="rk4",
                        eval_solver_kwargs={"num_steps": args.sample_steps},
                        # TFP's FFJORD solves the log-determinant along with every forward
                        # pass; sampling discards it, so the cheap estimator is the right one.
                        eval_trace="hutchinson_gaussian", seed=args.seed)
    flow = ContinuousFlow(config)
    n_params = int(sum(np.prod(v.shape) for v in flow.trainable_variables))
    optimizer = tf_keras.optimizers.Adam(1e-4)
    loss_and_grad = make_loss_and_grad(flow)
    apply = make_apply(optimizer, flow.trainable_variables)
    rng = np.random.default_rng(args.seed)

    def step() -> float:
        idx = rng.integers(0, len(features), args.batch)
        loss, _, grads = loss_and_grad(tf.constant(features[idx]), tf.constant(condition[idx]))
        apply(grads)
        return float(loss.numpy())

    t0 = time.perf_counter()
    first_loss = step()  # tracing
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        last_loss = step()
    train_s = time.perf_counter() - t0

    gen_cond = tf.constant(condition[rng.integers(0, len(condition), args.gen_batch)])
    # Batched generation as a compiled graph: base draws -> flow -> inverse preprocessing.
    forward = tf.function(flow.forward)

    def draw(i: int) -> np.ndarray:
        z = np.random.default_rng(i).standard_normal((args.gen_batch, features.shape[1]))
        return forward(tf.constant(z, tf.float32), gen_cond).numpy()

    draw(0)  # tracing
    t0 = time.perf_counter()
    flow_s, n_generated = 0.0, 0
    for i in range(args.gen_batches):
        t1 = time.perf_counter()
        x = draw(i + 1)
        flow_s += time.perf_counter() - t1
        showers = postprocess(x, gen_cond.numpy())
        n_generated += len(showers)
    gen_s = time.perf_counter() - t0
    return {"backbone": name, "parameters": n_params, "first_step_s": warmup_s,
            "train_samples_per_s": args.batch * args.steps / train_s,
            "showers_per_s": n_generated / gen_s,
            "flow_sampling_fraction": flow_s / gen_s,
            "loss_first": first_loss, "loss_last": last_loss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONE_KWARGS),
                        choices=list(BACKBONE_KWARGS))
    parser.add_argument("--n_events", type=int, default=20000, help="synthetic photon showers")
    parser.add_argument("--batch", type=int, default=625, help="training batch (tutorial: 625)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--gen_batch", type=int, default=2000)
    parser.add_argument("--gen_batches", type=int, default=3)
    parser.add_argument("--num_stacked", type=int, default=4, help="FFJORD blocks (tutorial: 4)")
    parser.add_argument("--layer_sizes", type=int, nargs="+", default=[4096, 2048, 1024, 512],
                        help="dense_unet widths (default: the tutorial's, as in "
                             "configs/config_calorimeter.json)")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32],
                        help="calorimeter_branches channels per level")
    parser.add_argument("--train_steps", type=int, default=4, help="RK4 steps in training")
    parser.add_argument("--sample_steps", type=int, default=8, help="RK4 steps in sampling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    args = parser.parse_args()
    start_load = load_record("start")
    if args.quick:
        args.n_events, args.batch, args.steps = 512, 32, 2
        args.gen_batch, args.gen_batches, args.num_stacked = 64, 1, 1
        args.layer_sizes, args.channels = [32, 16], [4, 8]
        args.train_steps, args.sample_steps = 2, 2
    _import_flow()  # fail early with one line if the model is not there
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU ({gpus[0].name})" if gpus else "CPU"
    features, condition = preprocess(generate_showers("gamma", args.n_events, seed=args.seed))
    rows = [bench_backbone(name, args, features, condition) for name in args.backbones]

    base = rows[0]
    print(f"calorimeter FFJORD throughput on {device}: batch {args.batch}, "
          f"{args.num_stacked} blocks, RK4 {args.train_steps} (train) / {args.sample_steps} "
          f"(sample) steps")
    print(f"{'backbone':<22}{'params':>10}{'train/s':>11}{'x':>7}{'showers/s':>12}{'x':>7}"
          f"{'first step s':>14}")
    for r in rows:
        print(f"{r['backbone']:<22}{r['parameters']:>10d}{r['train_samples_per_s']:>11.1f}"
              f"{r['train_samples_per_s'] / base['train_samples_per_s']:>7.2f}"
              f"{r['showers_per_s']:>12.1f}{r['showers_per_s'] / base['showers_per_s']:>7.2f}"
              f"{r['first_step_s']:>14.1f}")
    end_load = load_record("end")
    print(json.dumps({"benchmark": "calorimeter", "device": device, "batch": args.batch,
                      "load_start": start_load, "load_end": end_load,
                      "num_stacked": args.num_stacked, "quick": args.quick,
                      "results": {r["backbone"]: {
                          "parameters": r["parameters"],
                          "train_samples_per_s": round(r["train_samples_per_s"], 2),
                          "showers_per_s": round(r["showers_per_s"], 2)} for r in rows}}))
    return 0


if __name__ == "__main__":
    run_cli(main)
