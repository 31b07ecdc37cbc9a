"""Train the conditional autoregressive spline flow for the EIC KLM photon hit time, then
validate it on the test split (overall and binned by hit z x muon momentum).

A thin wrapper of `train_parallel.py --model_name klm` (the one trainer; for several processes
use `srun python scripts/train_parallel.py --model_name klm --backend tf`) that keeps this
script's flags. Without --data it trains on the project's SYNTHETIC timing model.

  python scripts/train_klm.py --out runs/klm                      # configs/klm.json defaults
  python scripts/train_klm.py --config configs/klm_cpu.json --out runs/klm_cpu
  python scripts/train_klm.py --data my_photons.h5 --out runs/real  # user file (HDF5/npz/npy)
  python scripts/train_klm.py --quick --out /tmp/klm_quick         # smoke run, ~1 minute

Rerunning with the same --out resumes from its checkpoint (--no_resume refuses instead of
overwriting: choose a new --out to start over).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffjord_kit.cli_args import add_common_flags
from ffjord_kit.errors import run_cli

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "klm.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="JSON config")
    ap.add_argument("--out", required=True, help="folder for model, checkpoint and reports")
    ap.add_argument("--data", help="user file (.h5/.hdf5/.npz/.npy) instead of synthetic data")
    ap.add_argument("--hdf5_key", "--hdf5-key", help="group or compound dataset in the HDF5 file")
    ap.add_argument("--rows", type=int, help="synthetic rows (overrides the config)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch_size", "--batch-size", type=int)
    ap.add_argument("--lr", type=float, help="learning rate")
    ap.add_argument("--weight_decay", "--weight-decay", type=float)
    ap.add_argument("--min_time", "--min-time", type=float,
                    help="physical minimum photon time [ns]")
    ap.add_argument("--quick", action="store_true", help="tiny model and data: a smoke run")
    ap.add_argument("--no_resume", "--no-resume", action="store_true",
                    help="do not resume an existing checkpoint in --out")
    ap.add_argument("--no_validate", "--no-validate", action="store_true",
                    help="skip the test-split validation")
    add_common_flags(ap)
    args = ap.parse_args()

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.experiments.runner import RunOptions, run_experiment
    from ffjord_kit.training import CheckpointStore

    overrides: dict = {"data": {}, "training": {}, "sampling": {}}
    if args.hdf5_key:
        overrides["data"]["hdf5_key"] = args.hdf5_key
    if args.rows is not None:
        overrides["data"]["synthetic_rows"] = args.rows
    for flag, key in (("batch_size", "batch_size"), ("lr", "learning_rate"),
                      ("weight_decay", "weight_decay")):
        if getattr(args, flag) is not None:
            overrides["training"][key] = getattr(args, flag)
    if args.min_time is not None:
        overrides["sampling"]["min_time_ns"] = args.min_time
    resume = not args.no_resume and CheckpointStore(args.out, None, None).exists()
    return run_experiment(RunOptions(
        model_name="klm", config=args.config, data_folder=args.data, run_dir=args.out,
        load=resume, epochs=args.epochs, quick=args.quick, synthetic=args.data is None,
        progress=not args.no_progress, report=not args.no_validate, overrides=overrides),
        SingleProcess())


if __name__ == "__main__":
    run_cli(main)
