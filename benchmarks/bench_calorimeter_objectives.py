#!/usr/bin/env python
"""Calorimeter showers: maximum likelihood against flow matching, same backbone, same budget.

Synthetic photons (ffjord_kit.calorimeter.synthetic; not Geant4): 30 000 training showers
(seed 1, 1 000 of them held out for the test NLL) and an independent 10 000-shower reference
(seed 2). For each objective the same conditional ContinuousFlow (the backbone, blocks and
solvers of --config, by default configs/config_calorimeter_cpu.json) trains on the one Trainer
for the same wall-clock budget of training steps (plateau schedule on the training loss, no
validation pass), then:

- test NLL of the preprocessed features on the held-out showers (evaluation solver, Gaussian
  Hutchinson trace, one probe per shower; the error includes the probe noise);
- --n_generate showers sampled at the reference's incident energies with the adaptive solver:
  showers per second and function evaluations;
- the generated showers with the reference's readout threshold applied (--readout_mev),
  against the reference: W1 over its statistical floor for all 30 observables, mean-image L1
  per layer, and the classifier AUC on all features, on the voxels alone and on the
  observables alone (which group separates the samples); the AUC without the threshold too.

Writes OUT/<objective>/ (model, report) and OUT/widths_fractions.png; prints a table per
observable and, as the last line, one JSON object. Run on a quiet machine; it records the load.

    python benchmarks/bench_calorimeter_objectives.py --budget_s 900 --out runs/calo_objectives
    python benchmarks/bench_calorimeter_objectives.py --quick --out /tmp/calo_smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from machine_load import load_record

from ffjord_kit.calorimeter.observables import classifier_features, shower_observables
from ffjord_kit.calorimeter.preprocessing import postprocess, preprocess
from ffjord_kit.calorimeter.report import compare_showers
from ffjord_kit.calorimeter.synthetic import generate_showers
from ffjord_kit.config import load_config
from ffjord_kit.errors import run_cli
from ffjord_kit.evaluation.classifier_auc import classifier_auc
from ffjord_kit.fileio import ensure_writable_dir, save_figure, write_json

ROOT = Path(__file__).resolve().parents[1]
N_VOXELS = 504
HEADLINE = ["E_total", "frac_layer_0", "frac_layer_1", "frac_layer_2", "shower_depth",
            "width_x_layer_1", "width_y_layer_1", "width_x_layer_2", "sparsity_layer_1"]


def train(objective: str, cfg, x, c, budget_s: float, out: Path, seed: int) -> tuple:
    """Train one flow by `objective` for `budget_s` seconds of steps; (flow, history)."""
    import tensorflow as tf  # noqa: F401  (loaded after the config check)

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flows.continuous import ContinuousFlow
    from ffjord_kit.training import ArrayData, ShardedBatches, Trainer
    from ffjord_kit.training.from_config import flow_config_from, train_settings_from

    # The budget ends the run: no epoch limit. Flow matching's one-network step compiles in
    # seconds under XLA (the maximum-likelihood step's RK4 graph took 87 s, hence JIT off in
    # the CPU config); the network, blocks, solvers and optimiser settings are the same.
    cfg = cfg.replace(OBJECTIVE=objective, MAXEPOCH=100_000,
                      JIT=cfg["JIT"] or objective == "flow_matching")
    flow = ContinuousFlow(flow_config_from(cfg, condition_dim=1, seed=seed))
    settings = dataclasses.replace(train_settings_from(cfg), time_budget_s=budget_s,
                                   restore_best=False, early_stop=0)
    batches = ShardedBatches(ArrayData(x, c), SingleProcess(), cfg["BATCH"], seed)
    trainer = Trainer(flow, settings, run_dir=out / "run", tensorboard=False, progress=False)
    result = trainer.fit(batches)
    flow.save(out / "model")
    return flow, result.history


def sample(flow, condition: np.ndarray, batch: int, seed: int) -> tuple[np.ndarray, float, int]:
    """Features (N, 507) at `condition`, seconds, and solver evaluations per batch."""
    from ffjord_kit.experiments.base import make_sampler

    draw = make_sampler(flow)
    draw(min(batch, len(condition)), condition[:batch], seed=seed + 99)  # trace once
    flow.reset_nfe()
    t0 = time.perf_counter()
    parts = [draw(len(condition[i:i + batch]), condition[i:i + batch], seed=seed + i)
             for i in range(0, len(condition), batch)]
    seconds = time.perf_counter() - t0
    return np.concatenate(parts), seconds, flow.nfe // len(parts)


def test_nll(flow, x, c) -> tuple[float, float]:
    from ffjord_kit.experiments.base import batched_log_prob

    log_p = batched_log_prob(flow, x, c, batch=250)
    return float(-log_p.mean()), float(log_p.std() / np.sqrt(len(log_p)))


def group_aucs(reference, generated, seed: int) -> dict[str, float]:
    """Classifier AUC on all features, the voxels alone and the observables alone."""
    fr, fg = classifier_features(reference), classifier_features(generated)
    voxels = list(range(N_VOXELS + 1))  # voxels and log10(E_inc)
    observables = list(range(N_VOXELS, fr.shape[1]))  # log10(E_inc) and the observables
    out = {}
    for name, cols in (("all", slice(None)), ("voxels", voxels), ("observables", observables)):
        r = classifier_auc(fr[:, cols], fg[:, cols], seed=seed, n_threads=None)
        out[name], out[name + "_stderr"] = float(r["auc"]), float(r["auc_stderr"])
    return out


def widths_fractions_figure(obs_ref: dict, obs_by: dict[str, dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["frac_layer_0", "frac_layer_1", "frac_layer_2", "width_x_layer_1",
             "width_y_layer_1", "width_x_layer_2"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
    for ax, name in zip(axes.ravel(), names, strict=True):
        ref = obs_ref[name][np.isfinite(obs_ref[name])]
        lo, hi = np.percentile(ref, [0.5, 99.5])
        bins = np.linspace(lo, hi, 50)
        ax.hist(ref, bins=bins, density=True, histtype="stepfilled", color="0.8",
                label="reference (synthetic)")
        for (label, obs), color in zip(obs_by.items(), ["tab:blue", "tab:red"], strict=False):
            ax.hist(obs[name][np.isfinite(obs[name])], bins=bins, density=True,
                    histtype="step", lw=1.5, color=color, label=label)
        ax.set_title(name)
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, target, dpi=90)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "config_calorimeter_cpu.json")
    p.add_argument("--fm_config", type=Path, default=None,
                   help="config of the flow-matching run (default: --config with OBJECTIVE "
                        "flow_matching; its backbone must match)")
    p.add_argument("--budget_s", type=float, default=900.0, help="training seconds per model")
    p.add_argument("--n_train", type=int, default=30_000)
    p.add_argument("--n_reference", type=int, default=10_000)
    p.add_argument("--n_generate", type=int, default=5_000)
    p.add_argument("--n_test", type=int, default=1_000)
    p.add_argument("--readout_mev", type=float, default=0.5,
                   help="the reference's readout threshold applied to generated voxels")
    p.add_argument("--objectives", nargs="+", default=["max_likelihood", "flow_matching"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/calo_objectives"))
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 20 s budgets")
    a = p.parse_args()
    if a.quick:
        a.budget_s, a.n_train, a.n_reference, a.n_generate, a.n_test = 20, 1200, 600, 300, 100
    load_start = load_record("start")
    cfg = load_config(a.config)
    fm_cfg = load_config(a.fm_config) if a.fm_config else cfg
    for key in ("BACKBONE", "LAYER_SIZE", "NLAYERS", "NSTACKED", "ACT"):
        if fm_cfg[key] != cfg[key]:
            raise SystemExit(f"error: {a.fm_config} differs from {a.config} in {key}: the "
                             f"comparison needs the same backbone")
    out = ensure_writable_dir(a.out)
    showers = generate_showers("gamma", a.n_train, seed=1)
    reference = generate_showers("gamma", a.n_reference, seed=2)
    x, c = preprocess(showers)
    x_test, c_test, x, c = x[:a.n_test], c[:a.n_test], x[a.n_test:], c[a.n_test:]
    rng = np.random.default_rng(a.seed)
    pick = np.sort(rng.choice(len(reference), min(a.n_generate, len(reference)), replace=False))
    c_gen = preprocess(reference.subset(pick))[1]
    obs_ref = shower_observables(reference)
    results, obs_by = {}, {}
    for objective in a.objectives:
        folder = ensure_writable_dir(out / objective)
        print(f"--- {objective}: training for {a.budget_s:.0f} s", flush=True)
        run_cfg = fm_cfg if objective == "flow_matching" else cfg
        flow, history = train(objective, run_cfg, x, c, a.budget_s, folder, a.seed)
        nll, nll_err = test_nll(flow, x_test, c_test)
        features, seconds, nfe = sample(flow, c_gen, 1000, a.seed)
        raw = postprocess(features, c_gen)
        generated = raw.with_readout_threshold(a.readout_mev * 1e-3)
        report = compare_showers(reference, generated, seed=a.seed, with_auc=False)
        aucs = group_aucs(reference, generated, a.seed)
        auc_raw = classifier_auc(classifier_features(reference), classifier_features(raw),
                                 seed=a.seed, n_threads=None)["auc"]
        obs_by[objective] = shower_observables(generated)
        results[objective] = {
            "epochs": len(history["epoch"]), "train_seconds": history["seconds"][-1],
            "steps": len(history["epoch"]) * (len(x) // run_cfg["BATCH"]),
            "test_nll": nll, "test_nll_stderr": nll_err, "sampling_nfe_per_batch": nfe,
            "showers_per_s": len(features) / seconds, "auc": aucs, "auc_no_threshold": auc_raw,
            "mean_image_l1": report["mean_image_l1"],
            "w1_over_floor": {k: v.get("w1_over_floor") for k, v in
                              report["observables"].items()},
            "ks": {k: v["ks"] for k, v in report["observables"].items()}}
        write_json(folder / "result.json", results[objective])
        print(f"{objective}: test NLL {nll:.1f} +- {nll_err:.1f}, AUC {aucs['all']:.4f} "
              f"(voxels {aucs['voxels']:.4f}, observables {aucs['observables']:.4f}), "
              f"{len(features) / seconds:.1f} showers/s, NFE/batch {nfe}", flush=True)
    load_end = load_record("end")
    if len(obs_by) > 1:
        widths_fractions_figure(obs_ref, obs_by, out / "widths_fractions.png")

    names = sorted(next(iter(results.values()))["w1_over_floor"])
    print(f"\n{'observable':24s}" + "".join(f"{o[:14]:>16s}" for o in results))
    for name in names:
        print(f"{name:24s}" + "".join(
            f"{(r['w1_over_floor'][name] or float('nan')):16.2f}" for r in results.values()))
    summary: dict = {"budget_s": a.budget_s, "readout_mev": a.readout_mev,
                     "load_start": load_start, "load_end": load_end}
    if {"max_likelihood", "flow_matching"} <= set(results):
        ml, fm = results["max_likelihood"], results["flow_matching"]
        wins = sum(1 for n in names if fm["w1_over_floor"][n] is not None and
                   ml["w1_over_floor"][n] is not None and
                   fm["w1_over_floor"][n] < ml["w1_over_floor"][n])
        print(f"\nflow matching closer to the reference (W1/floor) in {wins} of {len(names)} "
              f"observables")
        summary["fm_wins"] = wins
        summary["n_observables"] = len(names)
    for objective, r in results.items():
        summary[objective] = {k: r[k] for k in ("epochs", "steps", "test_nll", "test_nll_stderr",
                                                "sampling_nfe_per_batch", "showers_per_s",
                                                "auc", "auc_no_threshold", "mean_image_l1")}
        summary[objective]["w1_over_floor_headline"] = {n: r["w1_over_floor"][n]
                                                        for n in HEADLINE}
    write_json(out / "summary.json", {**summary, "results": results})
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    run_cli(main)
