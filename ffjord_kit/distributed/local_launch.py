"""Start N worker processes on this machine the way a cluster launcher would (loopback only).

`launch_local(n, argv, mode)` sets, per process, the environment that `srun` (mode 'slurm':
SLURM_PROCID, SLURM_LOCALID, SLURM_STEP_* on node 'localhost') or TensorFlow's TF_CONFIG
(mode 'tf_config', free ports picked now) would set, runs them concurrently and collects
their exit codes and output. Used by the tests and benchmarks/bench_scaling.py; on a real
cluster srun does this.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .launch import free_ports


@dataclass
class WorkerResult:
    rank: int
    returncode: int
    stdout: str
    stderr: str


def worker_env(n: int, rank: int, mode: str, ports: Sequence[int],
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of worker `rank` of `n` on this machine, for `mode`."""
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith(("SLURM_", "HOROVOD_")) or k == "TF_CONFIG"]:
        del env[key]  # a test run inside a real allocation must not inherit its layout
    if mode == "slurm":
        env.update({"SLURM_JOB_ID": "0", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                    "SLURM_NTASKS": str(n), "SLURM_STEP_NUM_TASKS": str(n),
                    "SLURM_STEP_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost",
                    "SLURM_STEP_TASKS_PER_NODE": str(n), "SLURMD_NODENAME": "localhost",
                    "FFJORD_KIT_PORT_BASE": str(ports[0])})
    elif mode == "tf_config":
        env["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": rank}})
    elif mode != "none":
        raise ValueError(f"unknown launch mode {mode!r}")
    return env


def launch_local(n: int, argv: Sequence[str], mode: str = "tf_config",
                 extra_env: Mapping[str, str] | None = None, timeout_s: float = 600.0,
                 on_line: Callable[[int, str, list], None] | None = None
                 ) -> list[WorkerResult]:
    """Run `argv` as n workers; returns their results in rank order.

    mode 'slurm' needs consecutive free ports (TF: base + local rank): the first of n picked
    ports is used as base and the next n-1 checked free. on_line(rank, line, procs) sees
    every stdout line as it arrives (e.g. to kill a worker mid-run). Workers still running
    after timeout_s are killed and get return code -9.
    """
    ports = _consecutive_free_ports(n) if mode == "slurm" else free_ports(max(n, 1))
    procs = []
    for rank in range(n):
        env = worker_env(n, rank, mode, ports)
        env.update(extra_env or {})
        procs.append(subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, bufsize=1))
    outs: list[list[str]] = [[] for _ in procs]
    def pump(rank: int) -> None:
        for line in procs[rank].stdout:
            outs[rank].append(line)
            if on_line is not None:
                on_line(rank, line, procs)

    errs: list[str] = [""] * n

    def pump_err(rank: int) -> None:
        errs[rank] = procs[rank].stderr.read()

    threads = [threading.Thread(target=f, args=(r,), daemon=True)
               for r in range(n) for f in (pump, pump_err)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for t in threads:
        t.join(timeout=10)
    return [WorkerResult(r, p.returncode, "".join(outs[r]), errs[r])
            for r, p in enumerate(procs)]


def _consecutive_free_ports(n: int, tries: int = 50) -> list[int]:
    """n consecutive ports free right now (SLURM mode: TF uses base + local rank)."""
    for _ in range(tries):
        base = free_ports(1)[0]
        if base + n <= 65535 and all(_bindable(p) for p in range(base, base + n)):
            return list(range(base, base + n))
    raise RuntimeError("no run of free consecutive ports found")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True
