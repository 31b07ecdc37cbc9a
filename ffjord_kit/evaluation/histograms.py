"""Reference-vs-generated histograms with a ratio panel, the standard physics validation plot."""

from __future__ import annotations

import numpy as np


def common_bins(reference: np.ndarray, generated: np.ndarray, bins: int = 50,
                quantiles: tuple[float, float] = (0.001, 0.999), log: bool = False) -> np.ndarray:
    """Bin edges covering the central `quantiles` of both samples (log-spaced if `log`)."""
    both = np.concatenate([np.ravel(reference), np.ravel(generated)])
    both = both[np.isfinite(both)]
    if log:
        both = both[both > 0]
    if both.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.quantile(both, quantiles)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if log:
        return np.geomspace(lo, hi, bins + 1)
    return np.linspace(lo, hi, bins + 1)


DECADES_FOR_LOG_Y = 3.0  # densities spanning more than this many decades get a log y axis


def plot_ratio_hist(ax_main, ax_ratio, reference: np.ndarray, generated: np.ndarray,
                    bins: np.ndarray | int = 50, label: str = "", log_x: bool = False,
                    ref_label: str = "reference", gen_label: str = "generated",
                    log_y: bool | None = None) -> None:
    """Draw density-normalised histograms (per unit of x: normalised by bin width) of both
    samples on `ax_main`, and generated/reference with Poisson errors on `ax_ratio` (bins the
    reference leaves empty are not drawn). `label` names the variable (the main panel's title
    and the ratio panel's x axis). log_y: None picks a log density axis when the reference
    density spans more than `DECADES_FOR_LOG_Y` decades (e.g. Jet_muEF's spike at 0)."""
    reference = np.ravel(reference)[np.isfinite(np.ravel(reference))]
    generated = np.ravel(generated)[np.isfinite(np.ravel(generated))]
    if np.isscalar(bins):
        bins = common_bins(reference, generated, int(bins), log=log_x)
    widths = np.diff(bins)
    h_ref, _ = np.histogram(reference, bins)
    h_gen, _ = np.histogram(generated, bins)
    d_ref = h_ref / max(len(reference), 1) / widths
    d_gen = h_gen / max(len(generated), 1) / widths
    ax_main.stairs(d_ref, bins, color="black", label=ref_label)
    ax_main.stairs(d_gen, bins, color="tab:red", label=gen_label)
    ax_main.set_ylabel("density")
    ax_main.legend(fontsize=7)
    if label:
        ax_main.set_title(label, fontsize=9)
    positive = d_ref[d_ref > 0]
    if log_y is None:
        log_y = positive.size > 1 and np.log10(positive.max() / positive.min()) > DECADES_FOR_LOG_Y
    if log_y:
        ax_main.set_yscale("log")
    filled = h_ref > 0  # a ratio needs a reference count; empty bins would be NaN
    ratio = d_gen[filled] / d_ref[filled]
    err = ratio * np.sqrt(1.0 / np.maximum(h_gen[filled], 1) + 1.0 / h_ref[filled])
    centers = 0.5 * (bins[1:] + bins[:-1])
    ax_ratio.errorbar(centers[filled], ratio, yerr=err, fmt=".", color="tab:red", ms=3)
    ax_ratio.axhline(1.0, color="black", lw=0.8)
    ax_ratio.set_ylim(0.5, 1.5)
    ax_ratio.set_ylabel("gen/ref")
    ax_ratio.set_xlabel(label)
    if log_x:
        ax_main.set_xscale("log")
        ax_ratio.set_xscale("log")


def ratio_figure(n_panels: int, ncols: int = 4):
    """A figure with `n_panels` (main, ratio) axis pairs in a grid; returns (fig, pairs).

    Each pair is its own cell (main panel on top of its ratio panel, no gap), and the cells
    are spaced so that a ratio panel's axis label never runs into the next row's title."""
    import matplotlib.pyplot as plt

    nrows = int(np.ceil(n_panels / ncols))
    fig = plt.figure(figsize=(3.4 * ncols, 3.4 * nrows), layout="constrained")
    outer = fig.add_gridspec(nrows, ncols)
    pairs = []
    for i in range(n_panels):
        r, c = divmod(i, ncols)
        cell = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.0)
        ax_main = fig.add_subplot(cell[0])
        ax_ratio = fig.add_subplot(cell[1], sharex=ax_main)
        ax_main.tick_params(labelbottom=False)
        pairs.append((ax_main, ax_ratio))
    return fig, pairs
