"""Train a FlashSim conditional spline flow (jets or muons) on FlashSim-layout HDF5 files."""

import argparse
import glob
from pathlib import Path

from ffjord_kit.errors import DataError, run_cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=["jets", "muons"], required=True)
    ap.add_argument("--config", help="run config JSON (default configs/flashsim_<kind>.json; "
                                     "--cpu picks configs/flashsim_<kind>_cpu.json)")
    ap.add_argument("--cpu", action="store_true", help="use the CPU-sized config")
    ap.add_argument("--data", help="folder with train_*.h5 and val.h5 (make_flashsim_data.py)")
    ap.add_argument("--train", nargs="+", help="training files (instead of --data)")
    ap.add_argument("--val", nargs="+", help="validation files (instead of --data)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--epochs", type=int, help="override training.epochs")
    ap.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    ap.add_argument("--rank", type=int, default=0, help="this worker's shard (data parallel)")
    ap.add_argument("--size", type=int, default=1, help="number of shards")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 epoch")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()

    import dataclasses

    from ffjord_kit.flashsim.config import load_config
    from ffjord_kit.flashsim.training import train_flashsim

    small = "_cpu" if args.cpu or args.quick else ""
    cfg_path = args.config or CONFIGS / f"flashsim_{args.kind}{small}.json"
    config = load_config(cfg_path)
    if config.schema.kind != args.kind:
        raise DataError(f"config {cfg_path} is for {config.schema.kind}, not {args.kind}")
    train_s = config.training
    if args.quick:
        config = dataclasses.replace(
            config, flow=dataclasses.replace(config.flow, hidden=16, num_blocks=1, num_bins=8,
                                             num_flow_steps=2))
        train_s = dataclasses.replace(train_s, epochs=1, batch_size=256, chunk_rows=2048,
                                      val_rows=2000, fit_rows=5000)
    if args.epochs:
        train_s = dataclasses.replace(train_s, epochs=args.epochs)
    config = dataclasses.replace(config, training=train_s)
    if args.data:
        train = sorted(glob.glob(str(Path(args.data) / "train_*.h5")))
        val = [str(Path(args.data) / "val.h5")]
        if not train:
            raise DataError(f"no train_*.h5 files in {args.data}")
    elif args.train and args.val:
        train, val = args.train, args.val
    else:
        raise DataError("give --data DIR, or both --train FILES and --val FILES")
    result = train_flashsim(config, train, val, args.out, resume=args.resume, rank=args.rank,
                            size=args.size, progress=not args.no_progress)
    last = result["history"][-1]
    print(f"done: {result['parameters']:,} parameters, final val NLL {last['val_nll']:.4f}, "
          f"model in {result['model']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
