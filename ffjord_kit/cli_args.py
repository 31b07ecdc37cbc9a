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


class _Verbose(argparse.Action):
    """--verbose: show TensorFlow's start-up messages (must act before TensorFlow loads)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import quiet

        quiet.set_verbose(True)
        setattr(namespace, self.dest, True)


def add_common_flags(parser: argparse.ArgumentParser, synthetic: bool = False,
                     progress: bool = True) -> None:
    """The flags every training script shares, in the one flag style (snake_case; the old
    dashed spellings keep working): --verbose, --no_progress, --synthetic."""
    parser.add_argument("--verbose", action=_Verbose,
                        help="show TensorFlow's start-up messages (hidden by default)")
    if progress:
        parser.add_argument("--no_progress", "--no-progress", action="store_true",
                            help="no per-step progress bar")
    if synthetic:
        parser.add_argument("--synthetic", action="store_true",
                            help="when the data are not found, write the project's SYNTHETIC "
                                 "stand-in into the data folder once and train on it")
