"""Plots for 2-D flows: sample scatter, density heat map, trajectories through time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import save_figure  # noqa: E402


def scatter(points: np.ndarray, path: str | Path, title: str, color: str = "tab:blue",
            lim: tuple[tuple[float, float], tuple[float, float]] | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color=color)
    ax.set_title(title)
    if lim is not None:
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
    ax.set_aspect("equal")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def density_map(log_density: np.ndarray, xs: np.ndarray, ys: np.ndarray, path: str | Path,
                title: str, data: np.ndarray | None = None) -> Path:
    """Heat map of exp(log_density) on the (len(ys), len(xs)) grid, data overlaid."""
    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.pcolormesh(xs, ys, np.exp(log_density), shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label="p(x)")
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=0.5, color="white", alpha=0.3)
    ax.set_title(title)
    ax.set_aspect("equal")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def trajectories(states: np.ndarray, times: np.ndarray, path: str | Path, title: str) -> Path:
    """states (T, N, 2) at `times`: one panel per time plus the paths of every point."""
    n_t = len(times)
    fig, axes = plt.subplots(1, n_t + 1, figsize=(3 * (n_t + 1), 3.2))
    colors = plt.cm.twilight(np.linspace(0, 1, states.shape[1]))
    lo, hi = states.reshape(-1, 2).min(0) - 0.2, states.reshape(-1, 2).max(0) + 0.2
    for ax, t, s in zip(axes[:-1], times, states, strict=True):
        ax.scatter(s[:, 0], s[:, 1], s=3, c=colors)
        ax.set_title(f"t = {t:.2f}")
    for i in range(states.shape[1]):
        axes[-1].plot(states[:, i, 0], states[:, i, 1], lw=0.4, color=colors[i], alpha=0.7)
    axes[-1].set_title("paths")
    for ax in axes:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
    fig.suptitle(title)
    return save_figure(fig, path, dpi=100, bbox_inches="tight")


def loss_curve(history: dict, path: str | Path, keys=("loss", "val_loss")) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k in keys:
        if k in history and history[k]:
            ax.plot(history.get("epoch", range(1, len(history[k]) + 1)), history[k], label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats")
    ax.legend()
    return save_figure(fig, path, dpi=110, bbox_inches="tight")
