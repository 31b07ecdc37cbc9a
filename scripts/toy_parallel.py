"""The tutorial's name for train_parallel.py: the same command-line interface and code."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_parallel import main  # noqa: E402

from ffjord_kit.errors import run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
