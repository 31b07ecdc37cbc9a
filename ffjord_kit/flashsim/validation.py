"""FlashSim validation: generated vs reference (FullSim or, here, synthetic) reco objects.

Per target: ratio-panel histogram and W1 set against the statistical floor (W1 between two
independent reference samples of the same size); 2-D correlation contours at the 0.5/0.9/0.99
quantiles; the pt-ratio profile against gen pt; for jets the b-tagging ROC split by flavour.
Comparisons are between distributions, never object by object.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluation.distances import compare_samples, statistical_floor  # noqa: E402
from ..evaluation.histograms import plot_ratio_hist, ratio_figure  # noqa: E402
from ..fileio import ensure_writable_dir, save_figure, write_json  # noqa: E402
from .schemas import Schema  # noqa: E402

CONTOUR_PAIRS = {
    "jets": [("Jet_ptRatio", "Jet_massRatio"), ("Jet_btagDeepB", "Jet_btagDeepFlavB"),
             ("Jet_btagCSVV2", "Jet_btagDeepB"), ("Jet_nConstituents", "Jet_qgl")],
    "muons": [("Muon_ptRatio", "Muon_etaMinusGen"), ("Muon_dxy", "Muon_dz"),
              ("Muon_pfRelIso03_all", "Muon_pfRelIso04_all"), ("Muon_ip3d", "Muon_sip3d")],
}
PT_PROFILE = {"jets": ("Jet_ptRatio", "GenJet_pt", None),
              "muons": ("Muon_ptRatio", "GenMuon_logpt", "log")}
QUANTILES = (0.5, 0.9, 0.99)


def w1_table(schema: Schema, reference: np.ndarray, generated: np.ndarray,
             rng: np.random.Generator) -> list[dict]:
    """Per target: W1, KS, floor W1 (same sample size) and W1 / floor.

    reference [M, T] with M >= 2 N; generated [N, T] (file target columns)."""
    n = len(generated)
    rows = []
    for j, name in enumerate(schema.target_names):
        cmp = compare_samples(reference[:, j], generated[:, j])
        floor = statistical_floor(reference[:, j], n, rng)
        rows.append({"variable": name, "w1": cmp["w1"], "floor_w1": floor["w1"],
                     "w1_over_floor": cmp["w1"] / floor["w1"] if floor["w1"] > 0 else None,
                     "ks": cmp["ks"], "floor_ks": floor["ks"]})
    return rows


def _density_levels(h: np.ndarray, quantiles=QUANTILES) -> list[float]:
    """Density thresholds whose super-level sets hold `quantiles` of the mass (increasing)."""
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat) / max(flat.sum(), 1e-300)
    levels = [flat[min(np.searchsorted(cum, q), len(flat) - 1)] for q in quantiles]
    return sorted(set(levels))


def contour_panel(ax, ref_xy: np.ndarray, gen_xy: np.ndarray, names: tuple[str, str]) -> None:
    lo = np.quantile(np.concatenate([ref_xy, gen_xy]), 0.005, axis=0)
    hi = np.quantile(np.concatenate([ref_xy, gen_xy]), 0.995, axis=0)
    hi = np.where(hi > lo, hi, lo + 1)
    edges = [np.linspace(lo[k], hi[k], 41) for k in range(2)]
    for xy, color in ((ref_xy, "black"), (gen_xy, "tab:red")):
        h, ex, ey = np.histogram2d(xy[:, 0], xy[:, 1], bins=edges)
        levels = _density_levels(h)
        if len(levels) > 1:
            ax.contour(0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1]), h.T, levels=levels,
                       colors=color, linewidths=1)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("contours 0.5/0.9/0.99 (black ref, red gen)", fontsize=7)


def pt_profile(gen_pt: np.ndarray, ratio: np.ndarray, bins: np.ndarray) -> dict:
    """Mean and standard deviation of the pt ratio in bins of gen pt."""
    idx = np.digitize(gen_pt, bins) - 1
    mean, std = [], []
    for b in range(len(bins) - 1):
        sel = ratio[idx == b]
        mean.append(float(sel.mean()) if len(sel) else None)
        std.append(float(sel.std()) if len(sel) > 1 else None)
    return {"bins": bins.tolist(), "mean": mean, "std": std}


def btag_rocs(schema: Schema, cond: np.ndarray, targets: np.ndarray) -> dict:
    """AUC and ROC points of DeepFlavB/DeepB for b vs light and b vs c jets."""
    from sklearn.metrics import roc_auc_score, roc_curve

    flav = cond[:, schema.condition_index("GenJet_hadronFlavour")]
    out = {}
    for tagger in ("Jet_btagDeepFlavB", "Jet_btagDeepB"):
        score = targets[:, schema.target_index(tagger)]
        for bkg_name, bkg in (("light", 0), ("c", 4)):
            sel = (flav == 5) | (flav == bkg)
            if (flav[sel] == 5).sum() == 0 or (flav[sel] == bkg).sum() == 0:
                continue
            y = (flav[sel] == 5).astype(int)
            fpr, tpr, _ = roc_curve(y, score[sel])
            keep = np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int)
            out[f"{tagger}_b_vs_{bkg_name}"] = {
                "auc": float(roc_auc_score(y, score[sel])),
                "fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
    return out


def validate(schema: Schema, reference: np.ndarray, generated: np.ndarray,
             out: str | os.PathLike, seed: int = 0) -> dict:
    """Compare file rows (conditions + targets) `generated` [N, C + T] with `reference`
    [M >= 2N, C + T]; the generated rows should be conditioned on gen values disjoint from
    reference[N:] or drawn from the same gen distribution. Writes figures and report.json."""
    out = ensure_writable_dir(out)
    rng = np.random.default_rng(seed)
    n_c = schema.n_conditions
    ref_c, ref_t = reference[:, :n_c], reference[:, n_c:]
    gen_c, gen_t = generated[:, :n_c], generated[:, n_c:]
    table = w1_table(schema, ref_t, gen_t, rng)

    fig, pairs = ratio_figure(schema.n_targets, ncols=6)
    for j, (ax_m, ax_r) in enumerate(pairs):
        plot_ratio_hist(ax_m, ax_r, ref_t[:, j], gen_t[:, j], bins=50,
                        label=schema.target_names[j])
    save_figure(fig, out / "histograms.png", dpi=80)

    pairs_2d = CONTOUR_PAIRS[schema.kind]
    fig, axes = plt.subplots(1, len(pairs_2d), figsize=(4 * len(pairs_2d), 3.6))
    for ax, (a, b) in zip(axes, pairs_2d, strict=True):
        ia, ib = schema.target_index(a), schema.target_index(b)
        contour_panel(ax, ref_t[:, [ia, ib]], gen_t[:, [ia, ib]], (a, b))
    fig.tight_layout()
    save_figure(fig, out / "contours.png", dpi=80)

    ratio_name, gen_name, gen_tf = PT_PROFILE[schema.kind]
    def gen_pt(c):
        g = c[:, schema.condition_index(gen_name)]
        return np.exp(g) if gen_tf == "log" else g
    bins = np.quantile(gen_pt(ref_c), np.linspace(0, 1, 11))
    r = schema.target_index(ratio_name)
    profile = {"reference": pt_profile(gen_pt(ref_c), ref_t[:, r], bins),
               "generated": pt_profile(gen_pt(gen_c), gen_t[:, r], bins)}
    fig, ax = plt.subplots(figsize=(5, 3.6))
    centers = np.sqrt(bins[1:] * bins[:-1])
    for key, color in (("reference", "black"), ("generated", "tab:red")):
        m = np.array([np.nan if v is None else v for v in profile[key]["mean"]])
        s = np.array([np.nan if v is None else v for v in profile[key]["std"]])
        ax.errorbar(centers, m, yerr=s, fmt="o-", color=color, label=key, ms=3, capsize=2)
    ax.set_xscale("log")
    ax.set_xlabel(f"gen pt [GeV] ({gen_name})")
    ax.set_ylabel(f"{ratio_name}: mean +- std")
    ax.legend()
    save_figure(fig, out / "pt_profile.png", dpi=80)

    report = {"kind": schema.kind, "n_generated": len(generated), "n_reference": len(reference),
              "w1": table, "pt_profile": profile,
              "n_within_2x_floor": sum(1 for t in table if t["w1_over_floor"] is not None
                                       and t["w1_over_floor"] <= 2.0),
              "n_variables": len(table)}
    if schema.kind == "jets":
        rocs = {"reference": btag_rocs(schema, ref_c, ref_t),
                "generated": btag_rocs(schema, gen_c, gen_t)}
        report["btag_roc"] = rocs
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for key, style in (("reference", "-"), ("generated", "--")):
            for name, roc in rocs[key].items():
                if name.startswith("Jet_btagDeepFlavB"):
                    ax.plot(roc["tpr"], np.maximum(roc["fpr"], 1e-5), style,
                            label=f"{key} {name.split('_b_vs_')[1]} (AUC {roc['auc']:.3f})")
        ax.set_yscale("log")
        ax.set_xlabel("b-jet efficiency")
        ax.set_ylabel("mis-tag rate")
        ax.legend(fontsize=7)
        save_figure(fig, out / "btag_roc.png", dpi=80)
    write_json(out / "report.json", report)
    return report


def format_w1_table(report: dict) -> str:
    """Markdown table of W1 vs floor."""
    lines = ["| variable | W1 | floor W1 | W1 / floor | KS |", "|---|---|---|---|---|"]
    for t in report["w1"]:
        ratio = "n/a" if t["w1_over_floor"] is None else f"{t['w1_over_floor']:.2f}"
        lines.append(f"| {t['variable']} | {t['w1']:.3g} | {t['floor_w1']:.3g} | {ratio} | "
                     f"{t['ks']:.3f} |")
    lines.append(f"\n{report['n_within_2x_floor']}/{report['n_variables']} variables within 2x "
                 "the statistical floor")
    return "\n".join(lines)
