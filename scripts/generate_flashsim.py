"""Generate reco-level jets or muons from gen-level inputs with a trained FlashSim flow."""

import argparse

from ffjord_kit.errors import run_cli


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=["jets", "muons"], required=True)
    ap.add_argument("--model", required=True, help="training output folder (train_flashsim.py)")
    ap.add_argument("--input", required=True,
                    help="HDF5 with `data` [N, C + T] or [N, C] (gen conditions first)")
    ap.add_argument("--out", required=True, help="output HDF5 file")
    ap.add_argument("--upsample", type=int, default=1, help="reco draws per gen object")
    ap.add_argument("--batch_size", "--batch-size", type=int, default=10_000)
    ap.add_argument("--limit", type=int, help="use the first N gen objects")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import h5py
    import numpy as np

    from ffjord_kit.errors import DataError
    from ffjord_kit.fileio import ensure_writable_dir
    from ffjord_kit.flashsim.generation import generate_targets, write_generated
    from ffjord_kit.flashsim.preprocessing import drop_nonfinite_rows
    from ffjord_kit.flashsim.reader import DATASET
    from ffjord_kit.flashsim.schemas import get_schema
    from ffjord_kit.flashsim.training import load_trained

    schema = get_schema(args.kind)
    if args.upsample < 1:
        raise DataError("--upsample must be >= 1")
    try:
        with h5py.File(args.input, "r") as f:
            if DATASET not in f:
                raise DataError(f"{args.input} has no dataset {DATASET!r}")
            rows = np.asarray(f[DATASET][:args.limit], np.float32)
    except FileNotFoundError:
        raise DataError(f"input file {args.input} does not exist") from None
    if rows.ndim != 2 or rows.shape[1] not in (schema.n_conditions, schema.n_columns):
        raise DataError(f"{args.input}: {DATASET!r} must be [N, {schema.n_conditions}] or "
                        f"[N, {schema.n_columns}], got {list(rows.shape)}")
    gen, dropped = drop_nonfinite_rows(rows[:, :schema.n_conditions])
    if dropped:
        print(f"dropped {dropped} gen rows with NaN/inf")
    ensure_writable_dir(__import__("pathlib").Path(args.out).resolve().parent)
    flow, transform = load_trained(args.model, schema)
    targets, gen_index, rate = generate_targets(flow, transform, gen, args.upsample,
                                                args.batch_size, args.seed)
    write_generated(args.out, gen, targets, gen_index, transform)
    print(f"generated {len(targets):,} {args.kind} from {len(gen):,} gen objects "
          f"(upsample {args.upsample}) at {rate:,.0f} objects/s -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
