"""Reference-vs-generated calorimeter validation: JSON report, overview page, per-observable plots.

`compare_showers` computes, for every observable of `calorimeter_observables`, the
Wasserstein-1 and Kolmogorov-Smirnov distances and the statistical floor (the same distances
between two disjoint reference subsamples of the generated sample's size: what a perfect model
would score), the mean-image distances per layer and the classifier AUC.
`write_calorimeter_report` writes into a folder:

    report.json               all numbers above
    overview.png              one page: 16 headline observables with ratio panels, AUC in the title
    mean_images.png           mean shower image per layer: reference, generated, generated/reference
    observables/<name>.png    one ratio-panel histogram per observable
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.classifier_auc import classifier_auc
from ..evaluation.distances import compare_samples, statistical_floor
from ..evaluation.histograms import plot_ratio_hist, ratio_figure
from ..fileio import ensure_writable_dir, save_figure, write_json
from .observables import (
    DEFAULT_VOXEL_THRESHOLD_GEV,
    classifier_features,
    mean_image_distance,
    mean_images,
    observable_specs,
    shower_observables,
)
from .showers import LAYER_KEYS, ShowerSet

OVERVIEW_OBSERVABLES: tuple[str, ...] = (
    "E_total", "deposit_ratio", "shower_depth", "frac_layer_0", "frac_layer_1", "frac_layer_2",
    "centroid_x_layer_1", "width_x_layer_0", "width_x_layer_1", "width_y_layer_1",
    "width_x_layer_2", "sparsity_layer_0", "sparsity_layer_1", "sparsity_layer_2",
    "brightest_layer_1", "brightest_ratio_layer_1",
)


def compare_showers(reference: ShowerSet, generated: ShowerSet, seed: int = 0,
                    threshold_gev: float = DEFAULT_VOXEL_THRESHOLD_GEV, with_auc: bool = True,
                    auc_max_events: int | None = None,
                    auc_n_threads: int | None = 1) -> dict[str, Any]:
    """All validation numbers of `generated` against `reference` (both in GeV), as a dict."""
    rng = np.random.default_rng(seed)
    obs_r = shower_observables(reference, threshold_gev)
    obs_g = shower_observables(generated, threshold_gev)
    floor_n = min(len(generated), len(reference) // 2)
    per_obs: dict[str, Any] = {}
    for name in obs_r:
        entry: dict[str, Any] = compare_samples(obs_r[name], obs_g[name])
        finite_r = obs_r[name][np.isfinite(obs_r[name])]
        n_floor = min(floor_n, len(finite_r) // 2)
        if n_floor >= 10:
            floor = statistical_floor(finite_r, n_floor, rng)
            entry["w1_floor"], entry["ks_floor"], entry["floor_n"] = (
                floor["w1"], floor["ks"], n_floor)
            entry["w1_over_floor"] = entry["w1"] / floor["w1"] if floor["w1"] > 0 else None
        per_obs[name] = entry
    report: dict[str, Any] = {
        "n_reference": len(reference), "n_generated": len(generated),
        "voxel_threshold_gev": threshold_gev,
        "observables": per_obs,
        "mean_image_l1": mean_image_distance(reference, generated),
    }
    if with_auc:
        report["classifier"] = classifier_auc(classifier_features(reference),
                                              classifier_features(generated), seed=seed,
                                              max_events=auc_max_events,
                                              n_threads=auc_n_threads)
    return report


def _draw(ax_main, ax_ratio, reference: np.ndarray, generated: np.ndarray, name: str,
          entry: dict[str, Any], bins: int) -> None:
    spec = observable_specs()[name]
    plot_ratio_hist(ax_main, ax_ratio, reference, generated, bins=bins, label=spec.label,
                    log_x=spec.log_x)
    ax_main.set_title(f"{name}: W1 {entry['w1']:.3g}, KS {entry['ks']:.3f}", fontsize=7)


def _overview_figure(obs_r: dict, obs_g: dict, report: dict[str, Any]):
    fig, pairs = ratio_figure(len(OVERVIEW_OBSERVABLES), ncols=4)
    for (ax_main, ax_ratio), name in zip(pairs, OVERVIEW_OBSERVABLES, strict=True):
        _draw(ax_main, ax_ratio, obs_r[name], obs_g[name], name, report["observables"][name], 40)
        ax_ratio.set_xlabel("")  # the title names the observable; frees room between rows
    fig.set_size_inches(12.8, 3.8 * ((len(OVERVIEW_OBSERVABLES) + 3) // 4))
    title = f"calorimeter validation: {report['n_reference']} reference vs " \
            f"{report['n_generated']} generated showers"
    if "classifier" in report:
        c = report["classifier"]
        title += f" | classifier AUC {c['auc']:.3f} +- {c['auc_stderr']:.3f}"
    fig.suptitle(title, fontsize=11, y=0.995)
    return fig


def _mean_image_figure(reference: ShowerSet, generated: ShowerSet):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    ref_img, gen_img = mean_images(reference), mean_images(generated)
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    for i, (r, g) in enumerate(zip(ref_img, gen_img, strict=True)):
        positive = np.concatenate([r[r > 0], g[g > 0]])
        vmin, vmax = (positive.min(), positive.max()) if positive.size else (1e-6, 1.0)
        for j, (img, what) in enumerate(((r, "reference"), (g, "generated"))):
            im = axes[i, j].imshow(np.where(img > 0, img, np.nan), aspect="auto",
                                   norm=LogNorm(vmin=vmin, vmax=vmax))
            axes[i, j].set_title(f"{LAYER_KEYS[i]} mean, {what} [GeV]", fontsize=9)
            fig.colorbar(im, ax=axes[i, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(r > 0, g / r, np.nan)
        im = axes[i, 2].imshow(ratio, aspect="auto", cmap="RdBu_r", vmin=0.5, vmax=1.5)
        axes[i, 2].set_title(f"{LAYER_KEYS[i]} generated / reference", fontsize=9)
        fig.colorbar(im, ax=axes[i, 2])
    fig.tight_layout()
    return fig


def write_observable_plots(obs_r: dict[str, np.ndarray], obs_g: dict[str, np.ndarray],
                           report: dict[str, Any], out_dir: str | os.PathLike,
                           names: list[str] | None = None) -> Path:
    """One ratio-panel histogram per observable (all, or `names`) as `out_dir/<name>.png`."""
    obs_dir = ensure_writable_dir(out_dir)
    for name in names if names is not None else list(observable_specs()):
        fig, [(ax_main, ax_ratio)] = ratio_figure(1, ncols=1)
        _draw(ax_main, ax_ratio, obs_r[name], obs_g[name], name, report["observables"][name], 50)
        fig.subplots_adjust(left=0.2, right=0.95, top=0.88, bottom=0.14)
        save_figure(fig, obs_dir / f"{name}.png", dpi=80)
    return obs_dir


def write_calorimeter_report(reference: ShowerSet, generated: ShowerSet,
                             out_dir: str | os.PathLike, seed: int = 0,
                             threshold_gev: float = DEFAULT_VOXEL_THRESHOLD_GEV,
                             with_auc: bool = True, auc_max_events: int | None = None,
                             per_observable_plots: bool = True,
                             auc_n_threads: int | None = 1) -> dict[str, Any]:
    """Compute `compare_showers` and write report.json and the figures into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    out = ensure_writable_dir(out_dir)
    report = compare_showers(reference, generated, seed=seed, threshold_gev=threshold_gev,
                             with_auc=with_auc, auc_max_events=auc_max_events,
                             auc_n_threads=auc_n_threads)
    obs_r = shower_observables(reference, threshold_gev)
    obs_g = shower_observables(generated, threshold_gev)
    files = {"overview": save_figure(_overview_figure(obs_r, obs_g, report),
                                     out / "overview.png", dpi=90),
             "mean_images": save_figure(_mean_image_figure(reference, generated),
                                        out / "mean_images.png", dpi=80)}
    if per_observable_plots:
        files["observables"] = write_observable_plots(obs_r, obs_g, report, out / "observables")
    report["files"] = {k: str(Path(v)) for k, v in files.items()}
    write_json(out / "report.json", report)
    return report
