"""Train the conditional autoregressive spline flow for the EIC KLM photon hit time, then
validate it on the test split (overall and binned by hit z x muon momentum).

  python scripts/train_klm.py --out runs/klm                      # configs/klm.json defaults
  python scripts/train_klm.py --config configs/klm_cpu.json --out runs/klm_cpu
  python scripts/train_klm.py --data my_photons.h5 --out runs/real  # user file (HDF5/npz/npy)
  python scripts/train_klm.py --quick --out /tmp/klm_quick         # smoke run, ~1 minute

Rerunning with the same --out resumes from its checkpoint (--no-resume starts over).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffjord_kit.errors import run_cli
from ffjord_kit.klm.config import load_config
from ffjord_kit.klm.pipeline import QUICK_OVERRIDES, run_training, with_overrides

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "klm.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="JSON config")
    ap.add_argument("--out", required=True, help="folder for model, checkpoint and reports")
    ap.add_argument("--data", help="user file (.h5/.hdf5/.npz/.npy) instead of synthetic data")
    ap.add_argument("--hdf5-key", help="group or compound dataset inside the HDF5 file")
    ap.add_argument("--rows", type=int, help="synthetic rows (overrides the config)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float, help="learning rate")
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--min-time", type=float, help="physical minimum photon time [ns]")
    ap.add_argument("--quick", action="store_true", help="tiny model and data: a smoke run")
    ap.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--no-validate", action="store_true", help="skip the test-split validation")
    args = ap.parse_args()

    config = load_config(args.config)
    if args.quick:
        config = with_overrides(config, QUICK_OVERRIDES)
    overrides: dict = {"data": {}, "training": {}, "sampling": {}}
    if args.data:
        overrides["data"]["path"] = args.data
    if args.hdf5_key:
        overrides["data"]["hdf5_key"] = args.hdf5_key
    if args.rows is not None:
        overrides["data"]["synthetic_rows"] = args.rows
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size"),
                      ("lr", "learning_rate"), ("weight_decay", "weight_decay")):
        if getattr(args, flag) is not None:
            overrides["training"][key] = getattr(args, flag)
    if args.min_time is not None:
        overrides["sampling"]["min_time_ns"] = args.min_time
    config = with_overrides(config, overrides)
    run_training(config, args.out, resume=not args.no_resume,
                 run_validation=not args.no_validate)
    return 0


if __name__ == "__main__":
    run_cli(main)
