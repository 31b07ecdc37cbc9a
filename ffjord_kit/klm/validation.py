"""Distribution-level validation of sampled vs true photon times on the test split, overall
and in a grid of context bins (hit z x muon momentum quantile bins).

Times are never compared row by row: each context has a whole distribution of photon times.
Per bin: KS and Wasserstein-1 between the true times and model times drawn for the same
contexts (`upsample` draws per context), against the statistical floor: the mean distance
between two independent truth samples of the bin's size. With a truth generator (synthetic
data) both are fresh draws for the bin's test contexts; otherwise the floor comes
from disjoint halves of the bin's truth and is scaled to the full size by 1/sqrt(2) (both
distances shrink as 1/sqrt(n) for continuous distributions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation.distances import compare_samples, ks_distance, statistical_floor, wasserstein1
from ..evaluation.histograms import common_bins, plot_ratio_hist, ratio_figure
from ..fileio import save_figure
from .config import SamplingConfig, ValidationConfig
from .model import KLMTimingModel
from .sampling import sample_physical, truncated_density
from .schema import KLMTable

TruthRedraw = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class ValidationResult:
    """The JSON-able `report` and the arrays the plots need."""

    report: dict
    truth: np.ndarray
    generated: np.ndarray
    truth_bin: np.ndarray  # bin index per test row
    generated_bin: np.ndarray
    z_edges: np.ndarray
    p_edges: np.ndarray
    density_grid: np.ndarray
    density: np.ndarray


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """`n_bins` equal-population bin edges; the outer edges widened to include everything."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _floor(truth: np.ndarray, context: np.ndarray, rng: np.random.Generator, repeats: int,
           redraw: TruthRedraw | None) -> dict[str, float]:
    if redraw is not None:
        w1s, kss = [], []
        for _ in range(repeats):
            # Two fresh truth samples: the floor must not inherit the test sample's own
            # fluctuation, which every model comparison shares.
            a, b = redraw(context, rng), redraw(context, rng)
            w1s.append(wasserstein1(a, b))
            kss.append(ks_distance(a, b)[0])
        return {"w1": float(np.mean(w1s)), "ks": float(np.mean(kss)), "method": "redraw"}
    half = statistical_floor(truth, len(truth) // 2, rng, repeats)
    return {"w1": half["w1"] / np.sqrt(2.0), "ks": half["ks"] / np.sqrt(2.0),
            "method": "half-split/sqrt2"}


def _judge(truth, generated, context, rng, vcfg: ValidationConfig, redraw) -> dict:
    row = compare_samples(truth, generated)
    row["n_truth"] = int(len(truth))
    if len(truth) < 4:
        row.update(floor_ks=None, floor_w1=None, ks_over_floor=None, judged=False, passed=None)
        return row
    floor = _floor(truth, context, rng, vcfg.floor_repeats, redraw)
    row.update(floor_ks=floor["ks"], floor_w1=floor["w1"], floor_method=floor["method"],
               ks_over_floor=row["ks"] / floor["ks"] if floor["ks"] > 0 else float("inf"),
               w1_over_floor=row["w1"] / floor["w1"] if floor["w1"] > 0 else float("inf"))
    row["judged"] = len(truth) >= vcfg.min_events
    row["passed"] = bool(row["ks_over_floor"] <= vcfg.ks_tolerance) if row["judged"] else None
    return row


def validate(model: KLMTimingModel, test: KLMTable, vcfg: ValidationConfig,
             scfg: SamplingConfig, truth_redraw: TruthRedraw | None = None) -> ValidationResult:
    """Sample `upsample` physical times per test context and compare with the true times,
    overall and per (z, momentum) bin. Returns the report and plot arrays."""
    rng = np.random.default_rng(vcfg.seed)
    z, p = test.column("hit_z"), test.column("mu_momentum")
    z_edges, p_edges = quantile_edges(z, vcfg.z_bins), quantile_edges(p, vcfg.momentum_bins)
    zi = np.clip(np.searchsorted(z_edges, z, side="right") - 1, 0, vcfg.z_bins - 1)
    pi = np.clip(np.searchsorted(p_edges, p, side="right") - 1, 0, vcfg.momentum_bins - 1)
    bin_of_row = zi * vcfg.momentum_bins + pi

    k = vcfg.upsample
    ctx_rep = np.repeat(test.context, k, axis=0)
    drawn = sample_physical(model, ctx_rep, rng, scfg.min_time_ns, scfg.max_rounds,
                            scfg.batch_size)
    gen, gen_bin = drawn.time, np.repeat(bin_of_row, k)

    bins = []
    for b in range(vcfg.z_bins * vcfg.momentum_bins):
        sel = bin_of_row == b
        iz, ip = divmod(b, vcfg.momentum_bins)
        row = {"bin": b, "z_range_cm": [float(z[sel].min()), float(z[sel].max())]
               if sel.any() else None,
               "momentum_range_gev": [float(p[sel].min()), float(p[sel].max())]
               if sel.any() else None, "z_bin": int(iz), "momentum_bin": int(ip)}
        if sel.sum() >= 2:
            row.update(_judge(test.time[sel], gen[gen_bin == b], test.context[sel], rng, vcfg,
                              truth_redraw))
        else:
            row.update(n_truth=int(sel.sum()), judged=False, passed=None)
        bins.append(row)
    overall = _judge(test.time, gen, test.context, rng, vcfg, truth_redraw)

    nll = float(-np.mean(model.log_prob(test.time, test.context)))
    sub = rng.choice(len(test), min(vcfg.density_contexts, len(test)), replace=False)
    edges = common_bins(test.time, gen, 80)
    grid = 0.5 * (edges[1:] + edges[:-1])
    density = truncated_density(model, grid, test.context[sub], rng, scfg.min_time_ns,
                                vcfg.density_mc)
    judged = [b for b in bins if b.get("judged")]
    report = {
        "n_test": len(test), "upsample": k, "test_nll_untruncated": nll,
        "min_time_ns": scfg.min_time_ns, "sampling_acceptance_rate": drawn.acceptance_rate,
        "sampling_rounds": drawn.rounds, "sampling_draws": drawn.draws,
        "true_fraction_below_min": float(np.mean(test.time < scfg.min_time_ns))
        if scfg.min_time_ns is not None else 0.0,
        "overall": overall, "bins": bins,
        "bins_judged": len(judged), "bins_passed": sum(bool(b["passed"]) for b in judged),
        "max_ks_over_floor": max((b["ks_over_floor"] for b in judged), default=None),
        "ks_tolerance": vcfg.ks_tolerance, "min_events": vcfg.min_events,
        "all_bins_pass": bool(judged) and all(b["passed"] for b in judged),
    }
    return ValidationResult(report, test.time, gen, bin_of_row, gen_bin, z_edges, p_edges,
                            grid, density)


def _bin_title(row: dict) -> str:
    z0, z1 = row["z_range_cm"] or (np.nan, np.nan)
    p0, p1 = row["momentum_range_gev"] or (np.nan, np.nan)
    return f"z {z0:.0f}..{z1:.0f} cm, p {p0:.2g}..{p1:.2g} GeV"


def plot_validation(res: ValidationResult, out_dir: str | Path) -> list[Path]:
    """overall.png (histograms per ns with the renormalised model density), bins.png (one
    ratio panel per context bin) and summary.png (KS/floor and W1 per bin)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    rep = res.report
    paths = []
    fig, [(ax, axr)] = ratio_figure(1, ncols=1)
    fig.set_size_inches(6, 5)
    plot_ratio_hist(ax, axr, res.truth, res.generated, 80, "photon time [ns]",
                    ref_label="test truth", gen_label="flow, t >= t_min")
    ax.plot(res.density_grid, res.density, color="tab:blue", lw=1,
            label="flow density / acceptance")
    ax.legend(fontsize=7)
    ov = rep["overall"]
    ax.set_title(f"KS {ov['ks']:.4f} (floor {ov['floor_ks']:.4f}), "
                 f"acceptance {rep['sampling_acceptance_rate']:.5f}", fontsize=8)
    paths.append(save_figure(fig, out_dir / "overall.png", dpi=110))

    n_z = len(res.z_edges) - 1
    n_p = len(res.p_edges) - 1
    fig, pairs = ratio_figure(n_z * n_p, ncols=n_p)
    fig.set_size_inches(3.6 * n_p, 3.6 * n_z)
    for row, (ax, axr) in zip(rep["bins"], pairs, strict=True):
        b = row["bin"]
        t, g = res.truth[res.truth_bin == b], res.generated[res.generated_bin == b]
        if len(t) == 0:
            continue
        bottom_row = row["z_bin"] == n_z - 1  # x label only there: room for the titles
        plot_ratio_hist(ax, axr, t, g, 40, "photon time [ns]" if bottom_row else "",
                        ref_label="truth", gen_label="flow")
        ks = row.get("ks")
        ratio = row.get("ks_over_floor")
        ax.set_title(f"{_bin_title(row)}\nKS {ks:.3f} = {ratio:.2f} x floor"
                     if ratio is not None else _bin_title(row), fontsize=7)
    paths.append(save_figure(fig, out_dir / "bins.png", dpi=100))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "ks_over_floor", "KS / statistical floor"),
                           (axes[1], "w1", "Wasserstein-1 [ns]")):
        grid = np.full((n_z, n_p), np.nan)
        for row in rep["bins"]:
            if row.get(key) is not None:
                grid[row["z_bin"], row["momentum_bin"]] = row[key]
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}" if key != "w1" else f"{v:.3f}", ha="center",
                    va="center", color="white", fontsize=8)
        ax.set_xlabel("momentum bin (low -> high)")
        ax.set_ylabel("hit z bin (far -> near sensor)")
        ax.set_title(label)
        fig.colorbar(im, ax=ax)
    paths.append(save_figure(fig, out_dir / "summary.png", dpi=100))
    return paths
