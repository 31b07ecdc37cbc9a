"""Timing shared by the side-by-side benchmarks: interleaved rounds with medians, CPU flags.

Every variant (ours, XLA, bfloat16, nflows...) is warmed up, then the variants run in rounds,
each round calling each variant `reps` times, and the median round is quoted: a slow spell of
a shared 2-core machine then hits every column alike instead of whichever ran during it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved_rates(variants: dict[str, tuple[Callable[[], object], int]], rounds: int,
                      reps: int, warmup: int = 2) -> dict[str, float]:
    """{name: (fn, items per call)} -> {name: median items/s over `rounds` rounds}."""
    for fn, _ in variants.values():
        for _ in range(warmup):  # tracing, XLA compilation, allocation
            fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, (fn, items) in variants.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            rates[name].append(items * reps / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in rates.items()}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_hardware() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def print_caveats(have_nflows: bool, start_load: dict) -> None:
    """The notes every nflows comparison prints under its table."""
    if not have_nflows:
        print("note: torch/nflows not installed (pip install -e '.[bench]'); nflows column "
              "skipped")
    if start_load["loaded"]:
        print("note: LOADED machine at start: ratios are distorted (PyTorch suffers more)")
