"""FlashSim model speed, side by side in one run: training samples/s, log-prob samples/s and
generation objects/s of the CPU-sized and full-size jets models in ffjord_kit (graph mode, as
the Trainer runs them, and XLA-compiled) and, where torch and nflows are installed
(`pip install -e '.[bench]'`), the same architecture in nflows; the fp32 and bf16 matmul roofs
of this machine; the training step's matmul FLOP rate against that roof; bfloat16 against
float32 training steps.

Timing (benchmarks/side_by_side.py): the variants run in interleaved rounds (each round calls
each variant `--reps` times) and the median round is quoted, so a slow spell of the machine
hits every column alike. The load average is printed at the start and the end; a start
above 0.5 per core is flagged "loaded". Inputs are standard-normal stand-ins for preprocessed
data (speed does not depend on values). Last line: one JSON object with the headline figures.

  python benchmarks/bench_flashsim.py              # both models (about 10 minutes here)
  python benchmarks/bench_flashsim.py --skip_full  # the CPU-sized model only
  python benchmarks/bench_flashsim.py --small      # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_record  # noqa: E402
from side_by_side import bf16_hardware, interleaved_rates, print_caveats  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def matmul_roof(dtype_name: str, m: int = 2048, k: int = 1192, n: int = 1192,
                seconds: float = 2.0) -> float:
    """GFLOP/s of one TF matmul [m, k] x [k, n] (the best of three timed spells)."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    rng = np.random.default_rng(0)
    a = tf.constant(rng.random((m, k)), dtype)
    b = tf.constant(rng.random((k, n)), dtype)
    mm = tf.function(tf.matmul)
    mm(a, b).numpy()
    best = 0.0
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            r = mm(a, b)
            reps += 1
        r.numpy()
        best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return best


def train_step_flops_per_row(cfg) -> float:
    """Matmul FLOPs of one training row (forward + backward = 3x forward) of a spline coupling
    flow: the conditioners' dense layers, the spline's two cumulative-sum matmuls, the LU maps."""
    d, c, h, k = cfg.features, cfg.context_features, cfg.hidden, cfg.num_bins
    forward = 0
    for step in range(cfg.num_flow_steps):
        n_t = len(range(step % 2, d, 2))
        n_id = d - n_t
        macs = (n_id + c) * h + cfg.num_blocks * (2 * h * h + c * h) + h * n_t * (3 * k - 1)
        macs += 2 * n_t * k * k + d * d
        forward += 2 * macs
    forward += 2 * d * d
    return 3.0 * forward


def tf_variants(flow_cfg, batch, gen_batch, rng, xla: bool, bf16: bool) -> tuple[dict, int]:
    """The ffjord_kit variants: the Trainer's step (graph; XLA), log_prob, generation."""
    import tensorflow as tf
    import tf_keras

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flashsim.generation import make_sampler
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow
    from ffjord_kit.train_step import make_apply, make_loss_and_grad

    d, c = flow_cfg.features, flow_cfg.context_features
    x = tf.constant(rng.normal(size=(batch, d)), tf.float32)
    cond = tf.constant(rng.normal(size=(batch, c)), tf.float32)
    gcond = tf.constant(rng.normal(size=(gen_batch, c)), tf.float32)
    seed = tf.constant([0, 1], tf.int32)
    variants = {}

    def add(tag, precision, jit):
        flow = SplineCouplingFlow(replace(flow_cfg, precision=precision))
        # The Trainer's own step: loss and gradient, then the optimizer update.
        step = SingleProcess().train_step(
            make_loss_and_grad(flow, jit_compile=jit),
            make_apply(tf_keras.optimizers.Adam(1e-4), flow.trainable_variables))
        log_prob = tf.function(lambda a, b: flow.log_prob(a, condition=b), jit_compile=jit)
        variants[f"train{tag}"] = (lambda: step(x, cond)[0].numpy(), batch)
        variants[f"log_prob{tag}"] = (lambda: log_prob(x, cond).numpy(), batch)
        if jit:
            d_ = flow.config.features
            sample = tf.function(lambda b, s: flow.to_data(
                tf.random.stateless_normal([tf.shape(b)[0], d_], seed=s), condition=b)[0],
                jit_compile=True)
        else:
            sample = make_sampler(flow)
        variants[f"generate{tag}"] = (lambda: sample(gcond, seed).numpy(), gen_batch)
        return flow

    flow = add("", "float32", False)
    if xla:
        add("_xla", "float32", True)
    if bf16:
        add("_bf16", "bfloat16", False)
    return variants, flow.num_parameters()


def nflows_variants(flow_cfg, batch, gen_batch, rng) -> tuple[dict, int]:
    import torch
    import torch.nn.functional as F
    from nflows import distributions, flows, transforms, utils
    from nflows.nn import nets

    d, c = flow_cfg.features, flow_cfg.context_features

    def linear():
        return transforms.CompositeTransform([transforms.RandomPermutation(features=d),
                                              transforms.LULinear(d, identity_init=True)])

    def coupling(i):
        return transforms.PiecewiseRationalQuadraticCouplingTransform(
            mask=utils.create_alternating_binary_mask(d, even=(i % 2 == 0)),
            transform_net_create_fn=lambda n_in, n_out: nets.ResidualNet(
                n_in, n_out, hidden_features=flow_cfg.hidden, context_features=c,
                num_blocks=flow_cfg.num_blocks, activation=F.relu, dropout_probability=0.0,
                use_batch_norm=flow_cfg.batch_norm),
            num_bins=flow_cfg.num_bins, tails="linear", tail_bound=flow_cfg.tail_bound)

    transform = transforms.CompositeTransform(
        [transforms.CompositeTransform([linear(), coupling(i)])
         for i in range(flow_cfg.num_flow_steps)] + [linear()])
    flow = flows.Flow(transform, distributions.StandardNormal([d]))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4)
    x = torch.tensor(rng.normal(size=(batch, d)), dtype=torch.float32)
    cond = torch.tensor(rng.normal(size=(batch, c)), dtype=torch.float32)
    gcond = torch.tensor(rng.normal(size=(gen_batch, c)), dtype=torch.float32)

    def train():
        flow.train()
        opt.zero_grad()
        loss = -flow.log_prob(x, context=cond).mean()
        loss.backward()
        opt.step()

    def log_prob():
        flow.eval()
        with torch.no_grad():
            flow.log_prob(x, context=cond)

    def generate():
        flow.eval()
        with torch.no_grad():
            flow.sample(1, context=gcond)

    n_params = sum(p.numel() for p in flow.parameters() if p.requires_grad)
    return {"train_nflows": (train, batch), "log_prob_nflows": (log_prob, batch),
            "generate_nflows": (generate, gen_batch)}, n_params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--reps", type=int, default=3, help="calls per variant per round")
    ap.add_argument("--full_batch", "--full-batch", type=int, default=512,
                    help="batch for the full-size model (2048 in the reference training)")
    ap.add_argument("--skip_full", "--skip-full",
                    action="store_true", help="only the CPU-sized model")
    ap.add_argument("--xla_full", "--xla-full", action="store_true",
                    help="also time XLA on the full-size model (minutes of compilation)")
    ap.add_argument("--small", action="store_true", help="smoke run (CPU model, 2 rounds)")
    args = ap.parse_args()
    if args.small:
        args.rounds, args.reps, args.skip_full = 2, 1, True

    start_load = load_record("start")
    import tensorflow as tf

    from ffjord_kit.flashsim.config import load_config

    bf16_hw = bf16_hardware()
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; bfloat16 matmul hardware (avx512_bf16/amx_bf16): "
          f"{'yes' if bf16_hw else 'no'}", flush=True)
    try:
        import nflows  # noqa: F401
        import torch
        have_nflows = True
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        have_nflows, torch_info = False, "not installed"
    roof = {p: matmul_roof(p) for p in ("float32", "bfloat16")}
    print(f"matmul roof (TF, 2048 x 1192 x 1192): float32 {roof['float32']:.0f} GFLOP/s, "
          f"bfloat16 {roof['bfloat16']:.0f} GFLOP/s", flush=True)

    models = [("jets_cpu", "flashsim_jets_cpu.json", 2048, 10_000, True)]
    if not args.skip_full:
        models.append(("jets_full", "flashsim_jets.json", args.full_batch, 2048, args.xla_full))
    headline = {"device": device, "torch": torch_info, "bf16_hardware": bf16_hw,
                "matmul_roof_gflops": {k: round(v) for k, v in roof.items()}}
    tables = []
    for name, cfg_file, batch, gen_batch, xla in models:
        flow_cfg = load_config(CONFIGS / cfg_file).flow
        variants, n_tf = tf_variants(flow_cfg, batch, gen_batch, np.random.default_rng(0),
                                     xla=xla, bf16=True)
        n_nf = None
        if have_nflows:
            nf, n_nf = nflows_variants(flow_cfg, batch, gen_batch, np.random.default_rng(0))
            variants.update(nf)
        rates = interleaved_rates(variants, args.rounds, args.reps)
        print(f"{name}: {json.dumps({k: round(v, 1) for k, v in rates.items()})}",
              file=sys.stderr, flush=True)
        gflops = rates["train"] * train_step_flops_per_row(flow_cfg) / 1e9
        tables.append((name, batch, gen_batch, rates, n_tf, n_nf, gflops))
        for k in ("train", "log_prob", "generate"):
            headline[f"{name}_{k}_per_s"] = round(rates[k])
            if f"{k}_xla" in rates:
                headline[f"{name}_{k}_xla_per_s"] = round(rates[f"{k}_xla"])
            if have_nflows:
                headline[f"{name}_{k}_vs_nflows"] = round(rates[k] / rates[f"{k}_nflows"], 2)
        headline[f"{name}_train_gflops"] = round(gflops, 1)
        headline[f"{name}_train_fraction_of_fp32_roof"] = round(gflops / roof["float32"], 2)
        headline[f"{name}_bf16_over_fp32_train"] = round(rates["train_bf16"] / rates["train"], 2)

    end_load = load_record("end")
    print(f"\n{'model':10s} {'metric':9s} {'batch':>6s} {'ffjord_kit/s':>13s} {'XLA/s':>9s} "
          f"{'bf16/s':>9s} {'nflows/s':>9s} {'ratio':>6s}")
    for name, batch, gen_batch, rates, n_tf, n_nf, gflops in tables:
        for k in ("train", "log_prob", "generate"):
            b = gen_batch if k == "generate" else batch

            def col(key, rates=rates):
                return f"{rates[key]:,.0f}" if key in rates else "-"

            ratio = (f"{rates[k] / rates[k + '_nflows']:.2f}" if k + "_nflows" in rates
                     else "-")
            print(f"{name:10s} {k:9s} {b:6d} {rates[k]:13,.0f} {col(k + '_xla'):>9s} "
                  f"{col(k + '_bf16'):>9s} {col(k + '_nflows'):>9s} {ratio:>6s}")
        print(f"{name:10s} parameters: ffjord_kit {n_tf:,}"
              + (f", nflows {n_nf:,}" if n_nf else "")
              + f"; train step {gflops:.0f} GFLOP/s of matmul = "
              f"{gflops / roof['float32']:.0%} of the fp32 roof; bf16/fp32 train "
              f"{rates['train_bf16'] / rates['train']:.2f}")
    print("ratio = ffjord_kit (graph mode, float32: what the Trainer runs) / nflows")
    if not bf16_hw:
        print("note: no bfloat16 matmul hardware on this CPU: bf16 figures show the emulated "
              "path, not what an AVX512_BF16/AMX CPU or an A100 would do")
    print_caveats(have_nflows, start_load)
    headline["load_start"], headline["load_end"] = start_load, end_load
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    from ffjord_kit.errors import run_cli

    run_cli(main)
