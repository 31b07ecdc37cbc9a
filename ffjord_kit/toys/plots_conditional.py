"""Figures for the conditional toys (tutorial Part 2): samples per condition, base-space images,
log-likelihood curves against c, fitted against true condition."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import save_figure  # noqa: E402

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def panels(sets: list[dict[str, np.ndarray]], titles: list[str], path: str | Path,
           lim: float | None = None) -> Path:
    """One scatter panel per dict {label: points (N, 2)}, each label in its own colour."""
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4), squeeze=False)
    for ax, points_by_label, title in zip(axes[0], sets, titles, strict=True):
        for color, (label, pts) in zip(COLORS, points_by_label.items(), strict=False):
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=color, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.legend(markerscale=5, fontsize=7, loc="upper left")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def likelihood_curves(grid: np.ndarray, model_ll: np.ndarray, true_ll: np.ndarray,
                      true_c: np.ndarray, fitted_c: np.ndarray, path: str | Path,
                      title: str) -> Path:
    """-2 (ln L - max ln L) against c for a few events: model (solid) and analytic (dashed)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i in range(len(model_ll)):
        color = COLORS[i % len(COLORS)]
        ax.plot(grid, -2 * (model_ll[i] - model_ll[i].max()), color=color,
                label=f"flow, true c = {true_c[i]:.2f}")
        ax.plot(grid, -2 * (true_ll[i] - true_ll[i].max()), "--", color=color, lw=1)
        ax.axvline(fitted_c[i], color=color, lw=0.6, alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_ylim(0, 9)
    ax.set_xlabel("c")
    ax.set_ylabel("-2 delta ln L  (dashed: analytic)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def fitted_vs_true(true_c: np.ndarray, fitted: np.ndarray, analytic: np.ndarray,
                   sigma: np.ndarray, pulls: np.ndarray, path: str | Path) -> Path:
    """Left: fitted and analytic ML c against the true c. Right: the pull histogram."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    lo, hi = float(true_c.min()), float(true_c.max())
    ax.errorbar(true_c, fitted, yerr=sigma, fmt=".", ms=2, lw=0.3, alpha=0.6,
                label="flow fit +- 1 sigma")
    ax.plot(true_c, analytic, ".", ms=1.5, color="tab:orange", alpha=0.6,
            label="analytic ML (mean of x)")
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("true c")
    ax.set_ylabel("fitted c")
    ax.legend(fontsize=7)
    edges = np.linspace(-4, 4, 33)
    bx.hist(np.clip(pulls, -4, 4), bins=edges, density=True, alpha=0.6, label="pulls")
    t = np.linspace(-4, 4, 200)
    bx.plot(t, np.exp(-t * t / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="N(0, 1)")
    bx.set_xlabel("(fitted - true) / sigma")
    bx.legend(fontsize=7)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def loss_curves(histories: dict[str, dict], path: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, h in histories.items():
        ax.plot(h["epoch"], h["nll"], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training NLL (nats)")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")
