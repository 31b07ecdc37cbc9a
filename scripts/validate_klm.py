"""Validate a trained KLM timing model on the test split: sampled vs true photon times,
overall and per (hit z x muon momentum) bin, KS and Wasserstein-1 against the statistical
floor; writes validation.json and overall/bins/summary.png into --out.

  python scripts/validate_klm.py --model runs/klm/model --config runs/klm/config.json \
      --out runs/klm/validation
"""

from __future__ import annotations

import argparse

from ffjord_kit.errors import run_cli
from ffjord_kit.klm.config import load_config
from ffjord_kit.klm.pipeline import run_validation_only, with_overrides


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="saved model folder (<train --out>/model)")
    ap.add_argument("--config", required=True,
                    help="config of the training run (<train --out>/config.json)")
    ap.add_argument("--out", required=True, help="folder for validation.json and figures")
    ap.add_argument("--data", help="user file instead of the config's data source")
    ap.add_argument("--min_time", "--min-time",
                    type=float, help="physical minimum photon time [ns]")
    ap.add_argument("--max_rounds", "--max-rounds", type=int, help="bound on resampling rounds")
    ap.add_argument("--upsample", type=int, help="model draws per test context")
    args = ap.parse_args()
    config = load_config(args.config)
    overrides: dict = {"data": {}, "sampling": {}, "validation": {}}
    if args.data:
        overrides["data"]["path"] = args.data
    if args.min_time is not None:
        overrides["sampling"]["min_time_ns"] = args.min_time
    if args.max_rounds is not None:
        overrides["sampling"]["max_rounds"] = args.max_rounds
    if args.upsample is not None:
        overrides["validation"]["upsample"] = args.upsample
    run_validation_only(with_overrides(config, overrides), args.model, args.out)
    return 0


if __name__ == "__main__":
    run_cli(main)
