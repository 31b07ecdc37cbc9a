"""Write synthetic calorimeter showers (a documented stand-in, not Geant4) in the CaloGAN layout.

    python scripts/make_calorimeter_data.py --particle gamma --n 100000 --out data/gamma.h5

See ffjord_kit/data/calorimeter_synthetic.py and docs/calorimeter.md for the shower model.
"""

from __future__ import annotations

import argparse
import json

from ffjord_kit.calorimeter.showers import DEFAULT_UNIT_SCALE, write_calogan
from ffjord_kit.calorimeter.synthetic import PARTICLES, generate_showers
from ffjord_kit.errors import UserError, run_cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particle", required=True, choices=sorted(PARTICLES))
    parser.add_argument("--n", type=int, required=True, help="number of showers")
    parser.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width_scale", type=float, default=1.0,
                        help="multiply every lateral radius (1.2: 20%% wider showers)")
    parser.add_argument("--energy_min", type=float, default=1.0, help="GeV")
    parser.add_argument("--energy_max", type=float, default=100.0, help="GeV")
    parser.add_argument("--unit_scale", type=float, default=DEFAULT_UNIT_SCALE,
                        help="GeV per voxel unit in the file (1e-3: MeV, as CaloGAN)")
    args = parser.parse_args()
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    showers = generate_showers(args.particle, args.n, seed=args.seed,
                               width_scale=args.width_scale,
                               energy_range_gev=(args.energy_min, args.energy_max))
    write_calogan(args.out, showers, unit_scale=args.unit_scale)
    summary = {"out": args.out, "particle": args.particle, "n": args.n, "seed": args.seed,
               "width_scale": args.width_scale,
               "mean_deposit_ratio": float((showers.layer_energies().sum(axis=1)
                                            / showers.energy[:, 0]).mean())}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_cli(main)
