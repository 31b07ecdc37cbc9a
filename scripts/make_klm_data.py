"""Write a SYNTHETIC KLM photon-timing table (see ffjord_kit/klm/synthetic.py for the timing
model) as HDF5 in the user-file layout: one 1-D dataset per column at the file root.

  python scripts/make_klm_data.py --out data/klm_synthetic.h5 --rows 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ffjord_kit.errors import UserError, run_cli
from ffjord_kit.klm.reader import HDF5_SUFFIXES, write_hdf5
from ffjord_kit.klm.synthetic import TimingModel, generate_table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output .h5 file")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    if out.suffix.lower() not in HDF5_SUFFIXES:
        raise UserError(f"--out must end in one of {list(HDF5_SUFFIXES)}, got {out.name}")
    if args.rows < 1:
        raise UserError(f"--rows must be >= 1, got {args.rows}")
    timing = TimingModel()
    table = generate_table(args.rows, args.seed, timing)
    write_hdf5(out, table, {"synthetic": True, "seed": args.seed,
                            "timing_model": json.dumps(timing.as_dict())})
    print(f"wrote {len(table)} synthetic photons to {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
