"""The loss-curve figure of a training history: training loss and validation NLL per epoch,
with the learning rate on a log-scale twin axis (plateau reductions show as steps)."""

from __future__ import annotations

from pathlib import Path

from ..fileio import save_figure


def plot_history(history: dict, path: str | Path) -> Path:
    """history: lists 'epoch', 'loss', 'val_nll', 'lr' (as written by the Trainer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    epochs = history["epoch"]
    ax.plot(epochs, history["loss"], marker=".", label="training loss (NLL + REG terms)")
    ax.plot(epochs, history["val_nll"], marker=".", label="validation NLL")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats")
    lr_ax = ax.twinx()
    lr_ax.plot(epochs, history["lr"], color="gray", lw=0.8, ls="--")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate (dashed)")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")
