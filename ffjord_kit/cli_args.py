"""argparse value types shared by the scripts: bad values become argparse's one-line errors."""

from __future__ import annotations

import argparse


def positive_int(v: str) -> int:
    """An integer >= 1."""
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return n


def positive_float(v: str) -> float:
    """A number > 0."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {v!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return x


def int_list(v: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. layer widths '32,32'."""
    try:
        out = tuple(int(h) for h in v.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {v!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers, got {v!r}")
    return out
