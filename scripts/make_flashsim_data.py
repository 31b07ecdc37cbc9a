"""Write a SYNTHETIC FlashSim data set (train_*.h5, val.h5, test.h5) for jets or muons."""

import argparse

from ffjord_kit.errors import run_cli


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=["jets", "muons"], required=True)
    ap.add_argument("--n", type=int, default=200_000, help="training rows (all files)")
    ap.add_argument("--files", type=int, default=1, help="training files to split them over")
    ap.add_argument("--n_val", "--n-val", type=int, default=20_000)
    ap.add_argument("--n_test", "--n-test", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args()
    from ffjord_kit.flashsim.synthetic import make_synthetic_dataset

    written = make_synthetic_dataset(args.kind, args.n, args.files, args.out, args.n_val,
                                     args.n_test, args.seed)
    for split, paths in written.items():
        print(f"{split}: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    run_cli(main)
