"""KLM timing flow throughput, side by side with nflows in one run: training samples/s and
conditional sampling samples/s (raw, and with the physical-support resampling t >= min_time)
at batch 100 (the notes' training batch) and 10^4.

The architecture is the EIC KLM notes' (configs/klm.json): 12 autoregressive RQ-spline layers,
1 feature, context 4, 64 hidden units, 8 hidden layers, 8 bins. nflows gets the same: 12
`MaskedPiecewiseRationalQuadraticAutoregressiveTransform` (64 units, an initial layer + 7
feed-forward blocks = 8 hidden layers, linear tails at the same bound) with reversals between
them, Adam with the same L2 weight decay. Both flows start as the identity map (zero output
weights, unit-slope biases), so both see the same acceptance in the resampling.

  python benchmarks/bench_klm.py                         # notes' model, batch 100 and 10^4
  python benchmarks/bench_klm.py --config configs/klm_cpu.json
  python benchmarks/bench_klm.py --small                 # smoke run: tiny model

Timing: interleaved rounds, median (benchmarks/side_by_side.py); load average at start and
end. Uses a GPU when TensorFlow sees one. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_record  # noqa: E402
from side_by_side import interleaved_rates, print_caveats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class NflowsKLM:
    """nflows' autoregressive RQ-spline flow with the same architecture, wrapped in the two
    calls the benchmark makes (`train_step`, `sample_raw`), so the library's own
    `sample_physical` resamples both models the same way."""

    def __init__(self, cfg, prep, lr: float, weight_decay: float):
        import torch
        import torch.nn.functional as F
        from nflows import distributions, flows, transforms

        from ffjord_kit.flows.rq_spline import identity_slope_logit

        self.torch, self.prep = torch, prep
        layers = []
        for i in range(cfg.num_layers):
            if i > 0:
                layers.append(transforms.ReversePermutation(features=cfg.dim))
            t = transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                features=cfg.dim, hidden_features=cfg.hidden_units,
                context_features=cfg.context_dim, num_bins=cfg.num_bins, tails="linear",
                tail_bound=cfg.tail_bound, num_blocks=cfg.hidden_layers - 1,
                use_residual_blocks=False, activation=F.relu)
            final = t.autoregressive_net.final_layer
            with torch.no_grad():  # identity start, as ours
                final.weight.zero_()
                bias = final.bias.view(cfg.dim, 3 * cfg.num_bins - 1)
                bias.zero_()
                bias[:, 2 * cfg.num_bins:] = identity_slope_logit()
            layers.append(t)
        self.flow = flows.Flow(transforms.CompositeTransform(layers),
                               distributions.StandardNormal([cfg.dim]))
        self.opt = torch.optim.Adam(self.flow.parameters(), lr=lr, weight_decay=weight_decay)

    def parameters(self) -> int:
        return sum(p.numel() for p in self.flow.parameters() if p.requires_grad)

    def train_step(self, u, c) -> None:
        self.flow.train()
        self.opt.zero_grad()
        loss = -self.flow.log_prob(u, context=c).mean()
        loss.backward()
        self.opt.step()

    def sample_raw(self, context: np.ndarray, rng, batch_size: int = 65536) -> np.ndarray:
        c = self.prep.encode_context(context)
        out = []
        self.flow.eval()
        with self.torch.no_grad():
            for i in range(0, len(c), batch_size):
                ci = self.torch.from_numpy(np.ascontiguousarray(c[i:i + batch_size]))
                out.append(self.flow.sample(1, context=ci).reshape(-1, 1).numpy())
        return self.prep.decode_time(np.concatenate(out)) if out else np.zeros(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "klm.json"),
                    help="config whose model and training sections are benchmarked")
    ap.add_argument("--batch_sizes", "--batch-sizes", default="100,10000")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--items_per_round", "--items-per-round", type=int, default=20_000,
                    help="rows each variant processes per round (sets the calls per round)")
    ap.add_argument("--min_time", "--min-time",
                    type=float, default=0.0, help="physical minimum time [ns]")
    ap.add_argument("--small", action="store_true", help="smoke run: tiny model")
    args = ap.parse_args()

    start_load = load_record("start")
    import tensorflow as tf
    import tf_keras

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.errors import UserError
    from ffjord_kit.flows.autoregressive_spline import AutoregressiveSplineConfig
    from ffjord_kit.klm.config import load_config
    from ffjord_kit.klm.model import KLMTimingModel
    from ffjord_kit.klm.preprocessing import KLMPreprocessing
    from ffjord_kit.klm.sampling import sample_physical
    from ffjord_kit.klm.synthetic import generate_table
    from ffjord_kit.train_step import make_apply, make_loss_and_grad

    config = load_config(args.config)
    model_cfg, tcfg = config.model, config.training
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if args.small:
        model_cfg = AutoregressiveSplineConfig(num_layers=2, hidden_units=16, hidden_layers=2)
        sizes, args.rounds, args.items_per_round = [100, 1000], 2, 2000
    if min(sizes) < 1:
        raise UserError("--batch-sizes must be positive integers")
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU: {gpus[0].name}" if gpus else "CPU"
    data = generate_table(max(sizes) * 2, seed=11)  # synthetic rows (speed only)
    # Sampling and training use separate copies of each model: the timed training steps
    # (thousands on the same rows) would otherwise move the density the sampler draws from.
    model = KLMTimingModel.create(model_cfg, KLMPreprocessing.fit(data))
    trained = KLMTimingModel.create(model_cfg, model.prep)
    train_step = SingleProcess().train_step(
        make_loss_and_grad(trained.flow),
        make_apply(tf_keras.optimizers.Adam(tcfg.learning_rate),
                   trained.flow.trainable_variables, weight_decay=tcfg.weight_decay))
    u_all = model.prep.encode_time(data.time)
    c_all = model.prep.encode_context(data.context)
    try:
        import torch
        nflows_model = NflowsKLM(model_cfg, model.prep, tcfg.learning_rate, tcfg.weight_decay)
        nflows_trained = NflowsKLM(model_cfg, model.prep, tcfg.learning_rate,
                                   tcfg.weight_decay)
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        nflows_model, torch_info = None, "not installed"
    print(f"device: {device}; model: {model_cfg.num_layers} layers x {model_cfg.hidden_layers}"
          f" hidden x {model_cfg.hidden_units} units, {model_cfg.num_bins} bins; parameters: "
          f"ffjord_kit {model.flow.num_parameters():,}"
          + (f", nflows {nflows_model.parameters():,}" if nflows_model else "")
          + f"; {torch_info}", flush=True)

    rows = []
    for b in sizes:
        u, c, ctx = u_all[:b], c_all[:b], data.context[:b]
        rng = np.random.default_rng(0)
        accept = {}

        def physical(m, key, ctx=ctx, b=b, rng=rng, accept=accept):
            accept[key] = sample_physical(m, ctx, rng, args.min_time, 100, b).acceptance_rate

        variants = {
            "train": (lambda u=u, c=c: train_step(u, c)[0].numpy(), b),
            "sample_raw": (lambda ctx=ctx, b=b, rng=rng: model.sample_raw(ctx, rng, b), b),
            "sample_physical": (lambda: physical(model, "ours"), b),
        }
        if nflows_model is not None:
            ut, ct = torch.from_numpy(u), torch.from_numpy(c)
            variants.update({
                "train_nflows": (lambda ut=ut, ct=ct: nflows_trained.train_step(ut, ct), b),
                "sample_raw_nflows": (lambda ctx=ctx, b=b, rng=rng:
                                      nflows_model.sample_raw(ctx, rng, b), b),
                "sample_physical_nflows": (lambda: physical(nflows_model, "nflows"), b)})
        reps = max(1, math.ceil(args.items_per_round / b))
        rates = interleaved_rates(variants, args.rounds, reps)
        row = {"batch": b, **{k: round(v, 1) for k, v in rates.items()},
               "acceptance": {k: round(v, 4) for k, v in accept.items()}}
        rows.append(row)
        print(f"batch {b}: {json.dumps(row)}", file=sys.stderr, flush=True)
    end_load = load_record("end")

    print(f"\n{'batch':>7} {'metric':16s} {'ffjord_kit/s':>13s} {'nflows/s':>10s} {'ratio':>6s}")
    headline = {"benchmark": "klm", "device": device, "torch": torch_info,
                "model": model_cfg.to_dict(), "min_time_ns": args.min_time, "rows": rows}
    for row in rows:
        for k in ("train", "sample_raw", "sample_physical"):
            nf = row.get(f"{k}_nflows")
            ratio = row[k] / nf if nf else None
            print(f"{row['batch']:>7} {k:16s} {row[k]:13,.0f} "
                  f"{'-' if nf is None else f'{nf:,.0f}':>10s} "
                  f"{'-' if ratio is None else f'{ratio:.2f}':>6s}")
            if ratio is not None:
                headline[f"b{row['batch']}_{k}_vs_nflows"] = round(ratio, 2)
        print(f"{'':>7} acceptance (t >= {args.min_time} ns): "
              + ", ".join(f"{k} {v:.4f}" for k, v in row["acceptance"].items()))
    print("ratio = ffjord_kit / nflows; sample_physical redraws rows below the minimum time "
          "(klm/sampling.py) for both models")
    print_caveats(nflows_model is not None, start_load)
    headline["load_start"], headline["load_end"] = start_load, end_load
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    from ffjord_kit.errors import run_cli

    run_cli(main)
