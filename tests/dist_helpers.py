"""Shared by the distributed tests: run scripts/check_distributed.py as several local
workers, an in-process single-rank reference, and weight comparisons."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ffjord_kit.distributed.local_launch import WorkerResult, launch_local

ROOT = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, str(ROOT / "scripts" / "check_distributed.py")]
# CPU only, quiet, bounded: a hung collective fails the test instead of the suite.
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1",
       "FFJORD_KIT_STEP_TIMEOUT": "60", "FFJORD_KIT_FIRST_STEP_TIMEOUT": "240",
       "FFJORD_KIT_STARTUP_TIMEOUT": "120", "OMP_NUM_THREADS": "1",
       "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
# Plain SGD: a summed gradient would move twice as far as the averaged one.
STEPS, BATCH, HIDDEN, LR = 4, 64, [16, 16], 0.05
CHECK_ARGS = ["--steps", str(STEPS), "--global_batch", str(BATCH), "--optimizer", "sgd",
              "--lr", str(LR), "--hidden", *map(str, HIDDEN), "--warmup_steps", "1"]


def settings(**kw):
    from ffjord_kit.distributed.check import CheckSettings

    base = dict(steps=STEPS, global_batch=BATCH, hidden=HIDDEN, optimizer="sgd", lr=LR,
                warmup_steps=1)
    base.update(kw)
    return CheckSettings(**base)


def describe(results: list[WorkerResult]) -> str:
    return "\n".join(f"--- rank {r.rank} rc={r.returncode}\n{r.stdout[-1500:]}\n"
                     f"{r.stderr[-3000:]}" for r in results)


def load_weights(out: Path) -> list[np.ndarray]:
    with np.load(out / "weights.npz") as f:
        return [f[k] for k in f.files]


def max_rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest |a - b| / max|a| over the weight tensors."""
    assert len(a) == len(b)
    return max(float(np.max(np.abs(x - y)) / np.max(np.abs(x))) for x, y in zip(a, b,
                                                                                 strict=True))


_REFERENCE: dict = {}


def reference_weights(out: Path, **kw) -> list[np.ndarray]:
    """K steps on one in-process rank with the whole global batch (computed once)."""
    from ffjord_kit.distributed import SingleProcess
    from ffjord_kit.distributed.check import run_check

    kw = {k: v for k, v in kw.items() if not (k == "family" and v == "continuous")}
    key = tuple(sorted(kw.items()))
    if key not in _REFERENCE:
        run_check(SingleProcess(), settings(**kw), out=out, log=lambda m: None)
        _REFERENCE[key] = load_weights(out)
    return _REFERENCE[key]


def run_workers(n: int, mode: str, out: Path, backend: str = "auto", extra=(),
                timeout_s: float = 400.0, extra_env=None, **kw) -> list[WorkerResult]:
    argv = [*CHECK, "--backend", backend, "--out", str(out), *CHECK_ARGS, *extra]
    return launch_local(n, argv, mode=mode, extra_env={**ENV, **(extra_env or {})},
                        timeout_s=timeout_s, **kw)


def result_json(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


_RUNS: dict = {}


def horovodrun_argv(n: int, argv: list[str]) -> list[str]:
    """`horovodrun -np n -H localhost:n --gloo <argv>` with this environment's horovodrun."""
    exe = Path(sys.executable).parent / "horovodrun"
    return [str(exe), "-np", str(n), "-H", f"localhost:{n}", "--gloo", *argv]


# The families of the second 2-rank job (the first, "continuous", is shared by other tests).
SECOND_JOB_FAMILIES = ("spline_coupling", "autoregressive_spline", "flow_matching")


def two_rank_run(backend: str, out: Path, families: tuple[str, ...] = ("continuous",)
                 ) -> tuple[list[WorkerResult], Path]:
    """The 2-rank check run of one backend, launched once per session and shared: 'tf' as two
    TF_CONFIG workers, 'horovod' through horovodrun --gloo. Several flow families run one
    after the other in the same job (one start-up), each writing to out/<family>."""
    if (backend, families) not in _RUNS:
        argv = [*CHECK, "--backend", backend, "--out", str(out), *CHECK_ARGS,
                "--family", *families]
        if backend == "horovod":
            results = launch_local(1, horovodrun_argv(2, argv), mode="none", extra_env=ENV,
                                   timeout_s=400)
        else:
            results = launch_local(2, argv, mode="tf_config", extra_env=ENV, timeout_s=400)
        _RUNS[backend, families] = (results, out)
    return _RUNS[backend, families]
