"""Validate generated calorimeter showers against a reference (both HDF5 in the CaloGAN layout).

    python scripts/plot_calo.py --reference ref.h5 --generated gen.h5 --out report_dir

Writes report.json, overview.png, mean_images.png and observables/*.png into --out and prints
the headline numbers (classifier AUC, per-observable W1/KS against their statistical floor).
"""

from __future__ import annotations

import argparse
import json

from ffjord_kit.calorimeter.observables import DEFAULT_VOXEL_THRESHOLD_GEV
from ffjord_kit.calorimeter.report import write_calorimeter_report
from ffjord_kit.calorimeter.showers import DEFAULT_UNIT_SCALE, NAN_POLICIES, read_calogan
from ffjord_kit.errors import run_cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="reference CaloGAN HDF5 file")
    parser.add_argument("--generated", required=True, help="generated CaloGAN HDF5 file")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--unit_scale", type=float, default=DEFAULT_UNIT_SCALE,
                        help="GeV per voxel unit in both files (1e-3: MeV)")
    parser.add_argument("--max_events", type=int, default=None,
                        help="use at most this many showers of each file")
    parser.add_argument("--nan_policy", choices=NAN_POLICIES, default="error")
    parser.add_argument("--threshold_gev", type=float, default=DEFAULT_VOXEL_THRESHOLD_GEV,
                        help="a voxel above this counts as hit (sparsity, classifier floor)")
    parser.add_argument("--no_auc", action="store_true", help="skip the classifier AUC")
    parser.add_argument("--no_per_observable", action="store_true",
                        help="only the overview and mean-image figures")
    parser.add_argument("--auc_threads", type=int, default=1,
                        help="threads for the classifier (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reference = read_calogan(args.reference, unit_scale=args.unit_scale,
                             max_events=args.max_events, nan_policy=args.nan_policy)
    generated = read_calogan(args.generated, unit_scale=args.unit_scale,
                             max_events=args.max_events, nan_policy=args.nan_policy)
    report = write_calorimeter_report(reference, generated, args.out, seed=args.seed,
                                      threshold_gev=args.threshold_gev,
                                      with_auc=not args.no_auc,
                                      per_observable_plots=not args.no_per_observable,
                                      auc_n_threads=args.auc_threads or None)
    worst = sorted(((v.get("w1_over_floor") or 0.0, k) for k, v in
                    report["observables"].items()), reverse=True)[:5]
    summary = {"out": args.out, "n_reference": report["n_reference"],
               "n_generated": report["n_generated"],
               "auc": report.get("classifier", {}).get("auc"),
               "worst_w1_over_floor": {k: round(v, 2) for v, k in worst}}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_cli(main)
