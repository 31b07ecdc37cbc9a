"""Start the data-parallel engine the launcher asks for (`make_backend`), or say which one it
would be (`describe`). The backends are imported here, lazily, and only when chosen, so the
project works without Horovod; launch.py reads the environment and imports no backend."""

from __future__ import annotations

import os

from .backend import Backend, SingleProcess
from .launch import (
    DEFAULT_RENDEZVOUS_PORT,
    DEFAULT_TF_PORT_BASE,
    DistributedError,
    Timeouts,
    check_port_free,
    choose_backend,
    detect_launch,
    env_float,
    gpus_on_node,
)


def make_backend(requested: str = "auto", port_base: int | None = None,
                 timeouts: Timeouts | None = None) -> Backend:
    """Start the engine for this process. Call it first, before any other TensorFlow op
    (TensorFlow's multi-worker engine must configure collectives at start-up).

    port_base: the TF workers' first gRPC port under srun, or rank 0's Gloo rendezvous port
    (default FFJORD_KIT_PORT_BASE, else 8888 / 29400).
    """
    kind = choose_backend(requested)
    info = detect_launch()
    timeouts = timeouts or Timeouts.from_env()
    if port_base is None and os.environ.get("FFJORD_KIT_PORT_BASE"):
        port_base = int(env_float("FFJORD_KIT_PORT_BASE", 0))
    if kind == "none":
        if info.size > 1:
            raise DistributedError(
                f"mismatched world size: {info.source} started {info.size} processes but "
                f"--backend {requested} trains one; use --backend tf or horovod")
        return SingleProcess()
    if kind == "horovod":
        from .horovod_backend import HorovodBackend

        return HorovodBackend(info, timeouts,
                              rendezvous_port=port_base or DEFAULT_RENDEZVOUS_PORT)
    port_base = port_base or DEFAULT_TF_PORT_BASE
    if info.source in ("slurm", "tf_config"):
        check_port_free(info.tf_port(port_base))  # before the slow TensorFlow start-up
    from .tf_backend import TFMultiWorkerBackend

    # Without srun or TF_CONFIG this is a one-worker strategy (a reference run).
    return TFMultiWorkerBackend(info, timeouts, port_base=port_base)


def describe(requested: str = "auto", port_base: int | None = None) -> dict:
    """This process's place in the job and the engine it would start, without starting it
    (what the SLURM script logs per task before training)."""
    info = detect_launch()
    kind = choose_backend(requested)
    if port_base is None and os.environ.get("FFJORD_KIT_PORT_BASE"):
        port_base = int(env_float("FFJORD_KIT_PORT_BASE", 0))
    out = {"backend": kind, "source": info.source, "rank": info.rank, "size": info.size,
           "local_rank": info.local_rank, "local_size": info.local_size, "host": info.host,
           "hosts": list(info.hosts), "tasks_per_host": list(info.tasks_per_host),
           "gpus_on_node": gpus_on_node()}
    if kind == "tf" and info.source in ("slurm", "tf_config"):
        out["tf_address"] = f"{info.host}:{info.tf_port(port_base or DEFAULT_TF_PORT_BASE)}"
    if kind == "horovod" and info.source == "slurm":
        out["rendezvous"] = f"{info.hosts[0]}:{port_base or DEFAULT_RENDEZVOUS_PORT}"
    return out

