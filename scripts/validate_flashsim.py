"""Validate a trained FlashSim flow: generate for held-out gen objects, compare with reference
reco (W1 vs statistical floor, ratio histograms, contours, pt profile, b-tag ROC)."""

import argparse

from ffjord_kit.errors import run_cli


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=["jets", "muons"], required=True)
    ap.add_argument("--model", required=True, help="training output folder")
    ap.add_argument("--test", required=True, nargs="+", help="reference FlashSim HDF5 file(s)")
    ap.add_argument("--n", type=int, default=20_000,
                    help="objects to generate (the reference needs >= 3 n rows)")
    ap.add_argument("--out", required=True, help="output folder for figures and report.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np

    from ffjord_kit.errors import DataError
    from ffjord_kit.flashsim.generation import generate_targets
    from ffjord_kit.flashsim.preprocessing import drop_nonfinite_rows
    from ffjord_kit.flashsim.reader import read_rows
    from ffjord_kit.flashsim.schemas import get_schema
    from ffjord_kit.flashsim.training import load_trained
    from ffjord_kit.flashsim.validation import format_w1_table, validate

    schema = get_schema(args.kind)
    rows, dropped = drop_nonfinite_rows(read_rows(args.test, schema))
    if len(rows) < 3 * args.n:
        raise DataError(f"reference has {len(rows)} finite rows; --n {args.n} needs "
                        f"{3 * args.n} (n to condition on, 2 n for reference and floor)")
    gen_rows, reference = rows[:args.n], rows[args.n:3 * args.n]
    flow, transform = load_trained(args.model, schema)
    targets, _, rate = generate_targets(flow, transform, gen_rows[:, :schema.n_conditions],
                                        seed=args.seed)
    generated = np.concatenate([gen_rows[:, :schema.n_conditions], targets], axis=1)
    report = validate(schema, reference, generated, args.out, seed=args.seed)
    print(format_w1_table(report))
    print(f"generation: {rate:,.0f} objects/s; {dropped} non-finite reference rows dropped")
    if "btag_roc" in report:
        for key in ("reference", "generated"):
            aucs = {k: round(v["auc"], 4) for k, v in report["btag_roc"][key].items()}
            print(f"b-tag AUC {key}: {aucs}")
    print(f"report: {args.out}/report.json")
    return 0


if __name__ == "__main__":
    run_cli(main)
