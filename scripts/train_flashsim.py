"""Train a FlashSim conditional spline flow (jets or muons) on FlashSim-layout HDF5 files.

A thin wrapper of `train_parallel.py --model_name jets|muons` (the one trainer, checkpoints,
exact resume) that keeps this script's flags. For several GPUs or processes use
`srun python scripts/train_parallel.py --model_name jets --backend tf|horovod` (docs/parallel.md).

    python scripts/train_flashsim.py --kind jets --cpu --data runs/jets_data --out runs/jets
    python scripts/train_flashsim.py --kind jets --cpu --data runs/jets_data --out runs/jets \
        --resume
"""

import argparse
from pathlib import Path

from ffjord_kit.cli_args import add_common_flags
from ffjord_kit.errors import UserError, run_cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["jets", "muons"], required=True)
    ap.add_argument("--config", help="run config JSON (default configs/flashsim_<kind>.json; "
                                     "--cpu picks configs/flashsim_<kind>_cpu.json)")
    ap.add_argument("--cpu", action="store_true", help="use the CPU-sized config")
    ap.add_argument("--data", help="folder with train_*.h5 and val.h5 (make_flashsim_data.py); "
                                   "default ./data/<kind>")
    ap.add_argument("--out", required=True, help="run folder (checkpoint, model, history)")
    ap.add_argument("--epochs", type=int, help="override training.epochs")
    ap.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    ap.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 epoch")
    add_common_flags(ap, synthetic=True)
    args = ap.parse_args()
    if args.rank is not None or args.size is not None:
        raise UserError("--rank/--size are gone: launch `srun python scripts/train_parallel.py "
                        "--model_name jets|muons --backend tf|horovod`, which averages the "
                        "gradients of all ranks (docs/parallel.md)")

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.experiments.runner import RunOptions, run_experiment

    config = args.config or (CONFIGS / f"flashsim_{args.kind}_cpu.json" if args.cpu else None)
    return run_experiment(RunOptions(
        model_name=args.kind, config=config and str(config), data_folder=args.data,
        run_dir=args.out, load=args.resume, epochs=args.epochs, quick=args.quick,
        synthetic=args.synthetic, progress=not args.no_progress), SingleProcess())


if __name__ == "__main__":
    run_cli(main)
