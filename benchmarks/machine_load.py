"""The load average a benchmark records at its start and end (every benchmark prints both).

On this 2-core machine a second job distorts ratios, not only times (PyTorch's threads suffer
far more than TensorFlow's), so a figure taken above 0.5 load per core is flagged "loaded".
"""

from __future__ import annotations

import os


def load_record(when: str) -> dict:
    """The load average now, and whether it makes this a loaded machine (> 0.5 per core)."""
    load1, load5, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    loaded = load1 > 0.5 * cores
    note = ("  LOADED: figures distorted" if loaded else "  (quiet)") if when == "start" \
        else "  (includes this benchmark's processes)"
    print(f"load average at {when}: {load1:.2f} (1 min), {load5:.2f} (5 min) on {cores} cores"
          + note, flush=True)
    return {"load1": round(load1, 2), "load5": round(load5, 2), "cores": cores,
            "loaded": loaded}
