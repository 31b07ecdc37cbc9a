#!/usr/bin/env python
"""Data-parallel scaling: 1 vs 2 processes measured here, and a projection to 16 GPUs.

Part 1 (measured, side by side in this run): scripts/check_distributed.py (a small two-moons
FFJORD, exact trace, RK4) with a fixed batch per rank (weak scaling, as train_parallel.py: each
rank reads its own shard with BATCH events), as 1 process and as 2 processes per backend (tf:
two TF_CONFIG workers on loopback; horovod: horovodrun --gloo, when Horovod is built). Printed:
step time, samples/s, epoch time for --n_data events, scaling efficiency
= samples/s(P) / (P x samples/s(1)). On a shared 2-core CPU the two processes also compete for
cores, so this measures overhead, not speed-up.

Part 1b (measured, `--jets`): the real FlashSim training path, `train_parallel.py --model_name
jets` with configs/flashsim_jets_cpu.json (375k parameters, batch 2048 per rank) on synthetic
jets streamed from two HDF5 files, as 1 process and as 2 ranks per backend. Throughput is
epoch 2's training rows per second (epoch 1 includes tracing), from history.json.

Part 2 (per model config, configs/config_<name>.json): parameters, gradient bytes each rank
all-reduces per step, training FLOPs per step (network FLOPs per evaluation counted by TF's
profiler, times evaluations per step, see `step_flops`), and the projection to 16 A100 on 4
Perlmutter nodes: compute time per step at the assumed GPU throughput (or, when longer, the
graph's op count times a per-launch cost: small models are launch-bound) against ring all-reduce
time 2 (P-1)/P x bytes / bandwidth + 2 (P-1) latency, with no overlap (conservative).
Assumptions are flags (--gpu_tflops, --net_gbs, --latency_us). Last line: JSON.

    python benchmarks/bench_scaling.py                 # full (a few minutes here)
    python benchmarks/bench_scaling.py --small         # smoke run
    python benchmarks/bench_scaling.py --jets --skip_moon --skip_projection   # jets only

The load average is printed at the start and the end; a run that starts above 0.5 per core is
flagged "loaded" (other jobs distort the ratios, not only the times). The end reading includes
this benchmark's own processes and is recorded for information.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from machine_load import load_record

from ffjord_kit.distributed import horovod_available
from ffjord_kit.distributed.local_launch import launch_local

ROOT = Path(__file__).resolve().parents[1]

ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="smoke run: few steps, tiny model")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch_per_rank", type=int, default=256)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--n_data", type=int, default=30000, help="events per epoch (moon: 30000)")
    p.add_argument("--backends", nargs="+", default=["tf", "horovod"])
    p.add_argument("--models", nargs="+", default=["moon", "mnist", "calorimeter"])
    p.add_argument("--ranks", type=int, default=16, help="projection: GPUs")
    p.add_argument("--gpus_per_node", type=int, default=4)
    p.add_argument("--gpu_tflops", type=float, default=10.0,
                   help="sustained FP32/TF32 TFLOP/s per A100 for these layers (assumption)")
    p.add_argument("--net_gbs", type=float, default=20.0,
                   help="all-reduce bandwidth per GPU across nodes, GB/s (Slingshot-11: one "
                        "25 GB/s NIC per GPU; assumption)")
    p.add_argument("--latency_us", type=float, default=10.0, help="per ring hop, microseconds")
    p.add_argument("--kernel_us", type=float, default=5.0,
                   help="GPU time per launched op, microseconds: the floor for small models")
    p.add_argument("--skip_measured", action="store_true", help="parts 1 and 1b off")
    p.add_argument("--skip_moon", action="store_true", help="part 1 off")
    p.add_argument("--skip_projection", action="store_true", help="part 2 off")
    p.add_argument("--jets", action="store_true", help="part 1b: FlashSim jets, 1 vs 2 ranks")
    p.add_argument("--jets_rows", type=int, default=98304,
                   help="training rows per epoch for part 1b (all ranks together)")
    args = p.parse_args(argv)
    if args.small:
        args.steps, args.batch_per_rank, args.hidden, args.models = 6, 64, [16, 16], ["moon"]
        args.jets_rows = 8192
    return args


def launch(backend: str, ranks: int, argv: list[str], what: str, timeout_s: float) -> bool:
    """Run `argv` as `ranks` processes of `backend` (horovodrun --gloo, or TF_CONFIG workers
    on loopback); False (with the first rank's errors printed) when a rank fails."""
    if backend == "horovod":
        argv = [str(Path(sys.executable).parent / "horovodrun"), "-np", str(ranks), "-H",
                f"localhost:{ranks}", "--gloo", *argv]
        results = launch_local(1, argv, mode="none", extra_env=ENV, timeout_s=timeout_s)
    else:
        results = launch_local(ranks, argv, mode="tf_config" if ranks > 1 else "none",
                               extra_env=ENV, timeout_s=timeout_s)
    if any(r.returncode != 0 for r in results):
        print(f"  {what} {backend} x{ranks} failed:\n{results[0].stderr[-2000:]}",
              file=sys.stderr)
        return False
    return True


# --------------------------------------------------------------------------- part 1
def measure(backend: str, ranks: int, args, out: Path) -> dict | None:
    check = [sys.executable, str(ROOT / "scripts" / "check_distributed.py"),
             "--backend", backend, "--out", str(out), "--steps", str(args.steps),
             "--global_batch", str(args.batch_per_rank * ranks), "--n_data", str(args.n_data),
             "--hidden", *map(str, args.hidden), "--warmup_steps", str(min(5, args.steps - 1))]
    if not launch(backend, ranks, check, "check", 1200):
        return None
    return json.loads((out / "result.json").read_text())


def part1(args) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        rows["1 process"] = measure("none", 1, args, Path(tmp) / "one")
        for b in args.backends:
            if b == "horovod" and not horovod_available():
                print("  horovod: not built (make horovod); skipped")
                continue
            rows[f"{b} x2"] = measure(b, 2, args, Path(tmp) / b)
    base = rows["1 process"]
    print(f"\nPart 1: weak scaling on this machine, {args.batch_per_rank} events per rank and "
          f"step, {args.n_data} events per epoch")
    print(f"{'run':<12}{'step s':>10}{'samples/s':>12}{'epoch s':>10}{'efficiency':>12}")
    table = {}
    for name, r in rows.items():
        if r is None:
            continue
        epoch = args.n_data / r["samples_per_s"]
        eff = r["samples_per_s"] / (r["ranks"] * base["samples_per_s"]) if base else None
        table[name] = {"ranks": r["ranks"], "step_time_s": r["step_time_s"],
                       "samples_per_s": r["samples_per_s"], "epoch_s": epoch,
                       "efficiency": eff, "rank_weight_spread": r["rank_weight_spread"]}
        print(f"{name:<12}{r['step_time_s']:>10.4f}{r['samples_per_s']:>12.0f}{epoch:>10.1f}"
              f"{eff:>12.2f}")
    return table


# --------------------------------------------------------------------------- part 1b
def train_jets(backend: str, ranks: int, config: Path, data: Path, out: Path) -> dict | None:
    argv = [sys.executable, str(ROOT / "scripts" / "train_parallel.py"), "--model_name", "jets",
            "--config", str(config), "--data_folder", str(data), "--out", str(out),
            "--no_progress", "--backend", backend]
    if not launch(backend, ranks, argv, "jets", 3600):
        return None
    history = json.loads((out / "jets" / "history.json").read_text())
    return {"epoch2_s": history["seconds"][1] - history["seconds"][0],
            "val_nll": history["val_nll"][-1]}


def part1b(args) -> dict:
    from ffjord_kit.flashsim.synthetic import make_synthetic_dataset

    batch = 2048
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_jets_") as tmp:
        tmp = Path(tmp)
        make_synthetic_dataset("jets", args.jets_rows, 2, tmp / "data", n_val=4096,
                               n_test=10, seed=0)
        cfg = json.loads((ROOT / "configs" / "flashsim_jets_cpu.json").read_text())
        cfg["training"].update({"epochs": 2, "val_rows": 4096, "batch_size": batch})
        (tmp / "jets.json").write_text(json.dumps(cfg))
        runs = [("1 process", "none", 1)] + [(f"{b} x2", b, 2) for b in args.backends]
        for name, backend, ranks in runs:
            if backend == "horovod" and not horovod_available():
                print("  horovod: not built (make horovod); skipped")
                continue
            r = train_jets(backend, ranks, tmp / "jets.json", tmp / "data", tmp / name[:3])
            if r is not None:
                steps = args.jets_rows // ranks // batch
                r.update(ranks=ranks, rows_per_epoch=steps * batch * ranks)
                r["samples_per_s"] = r["rows_per_epoch"] / r["epoch2_s"]
                rows[name] = r
    base = rows.get("1 process")
    print(f"\nPart 1b: FlashSim jets (configs/flashsim_jets_cpu.json, batch {batch} per rank), "
          f"{args.jets_rows} rows per epoch, epoch 2")
    print(f"{'run':<12}{'epoch s':>10}{'samples/s':>12}{'speed-up':>10}{'efficiency':>12}"
          f"{'val NLL':>10}")
    for name, r in rows.items():
        r["speedup"] = r["samples_per_s"] / base["samples_per_s"] if base else None
        r["efficiency"] = r["speedup"] / r["ranks"] if base else None
        print(f"{name:<12}{r['epoch2_s']:>10.1f}{r['samples_per_s']:>12.0f}"
              f"{r['speedup']:>10.2f}{r['efficiency']:>12.2f}{r['val_nll']:>10.3f}")
    return rows


# --------------------------------------------------------------------------- part 2
def network_flops(flow, batch: int = 1) -> tuple[float, int]:
    """FLOPs of one evaluation of one block's network for `batch` events (TF profiler), and
    the number of ops in its graph (each one GPU kernel launch, at least)."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    net, cfg = flow.backbones[0], flow.config
    spec = [tf.TensorSpec([], tf.float32), tf.TensorSpec([batch, cfg.dim], tf.float32)]
    if cfg.condition_dim:
        spec.append(tf.TensorSpec([batch, cfg.condition_dim], tf.float32))
        fn = tf.function(lambda t, x, c: net(t, x, condition=c))
    else:
        fn = tf.function(lambda t, x: net(t, x))
    graph = fn.get_concrete_function(*spec).graph
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    flops = float(model_analyzer.profile(graph, options=opts).total_float_ops)
    return flops, len(graph.get_operations())


def step_flops(flops_eval: float, cfg, batch: int) -> tuple[float, int]:
    """Training FLOPs of one step and network evaluations per step.

    Evaluations: NSTACKED blocks x 4 NUM_STEPS (RK4). Each costs the network (x1) plus, for the
    trace, one vector-Jacobian product (x2, Hutchinson) or D of them (exact, dense
    Jacobian); backpropagation through the solve costs twice the forward pass. REG's kinetic
    and Jacobian terms reuse those products.
    """
    evals = cfg["NSTACKED"] * 4 * cfg["NUM_STEPS"]
    trace = 2.0 if cfg["TRACE"].startswith("hutchinson") else 2.0 * cfg["SHAPE"][0]
    return 3.0 * evals * (1.0 + trace) * flops_eval * batch, evals


def part2(args) -> dict:
    from ffjord_kit.config import load_config
    from ffjord_kit.experiments import get_experiment
    from ffjord_kit.flows.continuous import ContinuousFlow
    from ffjord_kit.training.from_config import flow_config_from

    p, g = args.ranks, args.gpus_per_node
    print(f"\nPart 2: per model, projected to {p} A100 on {p // g} nodes "
          f"({args.gpu_tflops:g} TFLOP/s per GPU, {args.net_gbs:g} GB/s all-reduce bandwidth, "
          f"{args.latency_us:g} us per hop, {args.kernel_us:g} us per op launch; assumptions)")
    print(f"{'model':<12}{'params':>12}{'grad MB':>10}{'GFLOP/step':>12}{'FLOP/byte':>11}"
          f"{'comp ms':>9}{'comm ms':>9}{'eff 16':>8}{'speed-up':>10}")
    table = {}
    for name in args.models:
        exp = get_experiment(name)
        cfg = load_config(exp.default_config)
        flow = ContinuousFlow(flow_config_from(cfg, exp.condition_dim, 0))
        n_params = int(sum(v.shape.num_elements() for v in flow.trainable_variables))
        grad_bytes = 4.0 * n_params
        flops_eval, n_ops = network_flops(flow)
        flops, evals = step_flops(flops_eval, cfg, cfg["BATCH"])
        # The same cost model in units of launched ops: small networks are launch-bound.
        launches, _ = step_flops(float(n_ops), cfg, 1)
        comp_s = max(flops / (args.gpu_tflops * 1e12), launches * args.kernel_us * 1e-6)
        comm_s = (2.0 * (p - 1) / p * grad_bytes / (args.net_gbs * 1e9)
                  + 2 * (p - 1) * args.latency_us * 1e-6)
        eff = comp_s / (comp_s + comm_s)
        table[name] = {"params": n_params, "grad_bytes": grad_bytes, "step_flops": flops,
                       "evals_per_step": evals, "batch": cfg["BATCH"],
                       "compute_s": comp_s, "allreduce_s": comm_s,
                       "efficiency_16": eff, "speedup_16": p * eff}
        print(f"{name:<12}{n_params:>12,}{grad_bytes / 1e6:>10.1f}{flops / 1e9:>12.1f}"
              f"{flops / grad_bytes:>11.0f}{comp_s * 1e3:>9.2f}{comm_s * 1e3:>9.2f}"
              f"{eff:>8.2f}{p * eff:>10.1f}")
    return table


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = load_record("start")
    measured = {} if args.skip_measured or args.skip_moon else part1(args)
    jets = part1b(args) if args.jets and not args.skip_measured else {}
    projected = {} if args.skip_projection else part2(args)
    load_end = load_record("end")
    summary = {"measured": measured, "jets": jets, "projected": projected,
               "load": {"start": load_start, "end": load_end, "loaded": load_start["loaded"]},
               "assumptions": {"gpu_tflops": args.gpu_tflops, "net_gbs": args.net_gbs,
                               "latency_us": args.latency_us, "ranks": args.ranks}}
    headline = {name: {"efficiency_2": row["efficiency"]} for name, row in measured.items()}
    headline.update({f"jets {name}": {"speedup": row["speedup"],
                                      "samples_per_s": row["samples_per_s"]}
                     for name, row in jets.items()})
    headline.update({f"{m}_speedup_16": row["speedup_16"] for m, row in projected.items()})
    headline["loaded"] = summary["load"]["loaded"]
    print(json.dumps({"headline": headline, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
