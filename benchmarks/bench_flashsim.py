"""FlashSim model speed: training samples/s, log-prob samples/s and generation objects/s for the
CPU-sized and full-size jets models, in TensorFlow (ours) and, where torch and nflows are
installed (`pip install -e '.[bench]'`), the same architecture in nflows, in the same run.

Inputs are standard-normal stand-ins for preprocessed data (speed does not depend on values).
Last line: one JSON object with the headline figures.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _rate(fn, n_items, repeats):
    fn()  # warm-up: tracing / allocation
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_items * repeats / (time.perf_counter() - t0)


def bench_tf(flow_cfg, batch, gen_batch, repeats, rng):
    import tensorflow as tf
    import tf_keras

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flashsim.generation import make_sampler
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow
    from ffjord_kit.train_step import make_apply, make_loss_and_grad

    flow = SplineCouplingFlow(flow_cfg)
    d, c = flow_cfg.features, flow_cfg.context_features
    x = tf.constant(rng.normal(size=(batch, d)), tf.float32)
    cond = tf.constant(rng.normal(size=(batch, c)), tf.float32)
    gcond = tf.constant(rng.normal(size=(gen_batch, c)), tf.float32)
    # The Trainer's own step: compiled loss and gradient, then the optimizer update.
    step = SingleProcess().train_step(
        make_loss_and_grad(flow), make_apply(tf_keras.optimizers.Adam(1e-4),
                                             flow.trainable_variables))
    log_prob = tf.function(lambda a, b: flow.log_prob(a, condition=b))
    sampler = make_sampler(flow)
    seed = tf.constant([0, 1], tf.int32)
    return {"parameters": flow.num_parameters(),
            "train": _rate(lambda: step(x, cond)[0].numpy(), batch, repeats),
            "log_prob": _rate(lambda: log_prob(x, cond).numpy(), batch, repeats),
            "generate": _rate(lambda: sampler(gcond, seed).numpy(), gen_batch, repeats)}


def bench_nflows(flow_cfg, batch, gen_batch, repeats, rng):
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

    return {"parameters": sum(p.numel() for p in flow.parameters() if p.requires_grad),
            "train": _rate(train, batch, repeats), "log_prob": _rate(log_prob, batch, repeats),
            "generate": _rate(generate, gen_batch, repeats)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--full_batch", "--full-batch", type=int, default=512,
                    help="batch for the full-size model (2048 in the reference training)")
    ap.add_argument("--skip_full", "--skip-full",
                    action="store_true", help="only the CPU-sized model")
    ap.add_argument("--small", action="store_true", help="smoke run (2 repeats, CPU model)")
    args = ap.parse_args()
    if args.small:
        args.repeats, args.skip_full = 2, True

    import tensorflow as tf

    from ffjord_kit.flashsim.config import load_config

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    try:
        import nflows  # noqa: F401
        import torch  # noqa: F401
        have_nflows = True
    except ImportError:
        have_nflows = False
    models = [("jets_cpu", "flashsim_jets_cpu.json", 2048, 10_000)]
    if not args.skip_full:
        models.append(("jets_full", "flashsim_jets.json", args.full_batch, 2048))
    rows, headline = [], {"device": device}
    for name, cfg_file, batch, gen_batch in models:
        flow_cfg = load_config(CONFIGS / cfg_file).flow
        res = {"tf": bench_tf(flow_cfg, batch, gen_batch, args.repeats,
                              np.random.default_rng(0))}
        print(f"{name} tf: {json.dumps(res['tf'])}", file=sys.stderr, flush=True)
        if have_nflows:
            res["nflows"] = bench_nflows(flow_cfg, batch, gen_batch, args.repeats,
                                         np.random.default_rng(0))
        rows.append((name, batch, gen_batch, res))
        print(f"{name}: {json.dumps(res)}", file=sys.stderr, flush=True)
        for k in ("train", "log_prob", "generate"):
            headline[f"{name}_{k}_per_s"] = round(res["tf"][k])
            if "nflows" in res:
                headline[f"{name}_{k}_vs_nflows"] = round(res["tf"][k] / res["nflows"][k], 2)

    print(f"device: {device}")
    print(f"{'model':10s} {'metric':10s} {'batch':>6s} {'ffjord_kit/s':>13s} {'nflows/s':>10s} "
          f"{'ratio':>6s}")
    for name, batch, gen_batch, res in rows:
        for k in ("train", "log_prob", "generate"):
            b = gen_batch if k == "generate" else batch
            ours, nf = res["tf"][k], res.get("nflows", {}).get(k)
            nf_s = "-" if nf is None else f"{nf:,.0f}"
            ratio = "-" if nf is None else f"{ours / nf:.2f}"
            print(f"{name:10s} {k:10s} {b:6d} {ours:13,.0f} {nf_s:>10s} {ratio:>6s}")
        print(f"{name:10s} parameters: ffjord_kit {res['tf']['parameters']:,}"
              + (f", nflows {res['nflows']['parameters']:,}" if "nflows" in res else ""))
    if not have_nflows:
        print("note: torch/nflows not installed (pip install -e '.[bench]'); nflows column "
              "skipped")
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    from ffjord_kit.errors import run_cli

    run_cli(main)
