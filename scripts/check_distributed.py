"""Check a data-parallel set-up: a short deterministic run whose ranks must agree.

    python scripts/check_distributed.py --backend none --out runs/check1
    horovodrun -np 2 -H localhost:2 --gloo python scripts/check_distributed.py --backend horovod
    srun -n 16 python scripts/check_distributed.py --backend tf --out runs/check16

With averaged gradients, the weights after K steps do not depend on the number of ranks for a
fixed global batch (compare weights.npz of two runs); rank_weight_spread must be 0.
Prints one line per step and rank, and the result (also written to --out/result.json by rank 0).
"""

from __future__ import annotations

import argparse
import json

from ffjord_kit.distributed import BACKEND_CHOICES, make_backend
from ffjord_kit.errors import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument("--port_base", type=int, default=None,
                   help="TF workers' first gRPC port / Horovod rendezvous port under srun")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--global_batch", type=int, default=64, help="batch summed over ranks")
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    p.add_argument("--n_data", type=int, default=4096)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--warmup_steps", type=int, default=2, help="steps left out of the timing")
    p.add_argument("--family", nargs="+", default=["continuous"],
                   # check.FAMILIES (not imported here: the backend starts before TF work)
                   choices=["continuous", "spline_coupling", "autoregressive_spline",
                            "flow_matching"],
                   help="flow family (or families, one after the other in the same job) of the "
                        "check model ('flow_matching': the continuous flow trained by flow "
                        "matching); with several, each writes to --out/<family>")
    p.add_argument("--out", default=None, help="folder for result.json and weights.npz")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    backend = make_backend(args.backend, port_base=args.port_base)  # before any other TF op
    from ffjord_kit.distributed.check import CheckSettings, run_check

    for family in args.family:
        settings = CheckSettings(steps=args.steps, global_batch=args.global_batch,
                                 n_data=args.n_data, hidden=args.hidden,
                                 optimizer=args.optimizer, lr=args.lr,
                                 warmup_steps=args.warmup_steps, family=family)
        out = args.out if args.out is None or len(args.family) == 1 else f"{args.out}/{family}"
        result = run_check(backend, settings, out=out, log=lambda m: print(m, flush=True))
        if backend.is_chief:
            print(json.dumps(result), flush=True)
    backend.shutdown()
    return 0


if __name__ == "__main__":
    run_cli(main)
