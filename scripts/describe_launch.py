"""Print, as one JSON line, where this process sits in a multi-process job and which engine
`--backend` would start (nothing is started). The SLURM script runs it once per task:

    srun python scripts/describe_launch.py --backend tf
"""

from __future__ import annotations

import argparse
import json

from ffjord_kit.distributed.factory import describe
from ffjord_kit.distributed.launch import BACKEND_CHOICES
from ffjord_kit.errors import run_cli


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument("--port_base", type=int, default=None,
                   help="TF workers' first gRPC port / Horovod rendezvous port (srun)")
    args = p.parse_args(argv)
    print(json.dumps(describe(args.backend, args.port_base)), flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
