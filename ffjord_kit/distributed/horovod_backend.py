"""Data parallelism with Horovod (built from source by `make horovod`; Gloo, NCCL on GPUs).

Launch with `horovodrun -np N -H host:slots --gloo python ...`, or with plain `srun` under
SLURM: when srun started the process (no HOROVOD_RANK), the ranks are read from SLURM's
variables and rank 0 serves Horovod's Gloo rendezvous (an HTTP key-value store) on
rendezvous_port of the first node, so a Gloo-only build needs neither MPI nor ssh.

Each step runs the shared `loss_and_grad` (its GradientTape), then averages the gradients,
the loss and its parts with one grouped all-reduce (hvd.Average) before `apply`: what
`hvd.DistributedGradientTape` does, kept outside the tape so the same compiled loss serves
every backend. `prepare` broadcasts the weights and optimizer slots from rank 0.
"""

from __future__ import annotations

import os

import tensorflow as tf

from .collective import CollectiveBackend
from .launch import (
    DistributedError,
    LaunchInfo,
    Timeouts,
    check_port_free,
    pin_gpu,
    wait_for_port,
)
from .watchdog import guarded_step

try:
    import horovod.tensorflow as hvd
    from horovod.common.exceptions import HorovodInternalError
except ImportError:  # the project works without Horovod; launch.choose_backend says so
    hvd = None
    HorovodInternalError = RuntimeError

_LOST = (HorovodInternalError, tf.errors.UnknownError, tf.errors.FailedPreconditionError,
         tf.errors.UnavailableError, tf.errors.AbortedError)


def _slurm_plan(info: LaunchInfo) -> list:
    """Horovod's slot list (rank, local and cross ranks per process) for the SLURM layout."""
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    hosts = ",".join(f"{h}:{n}" for h, n in zip(info.hosts, info.tasks_per_host, strict=True))
    return get_host_assignments(parse_hosts(hosts), info.size)


def _serve_rendezvous(plan: list, port: int):
    """Rank 0 under srun: Horovod's rendezvous server (what horovodrun runs in its launcher)."""
    from horovod.runner.http.http_server import RendezvousHandler, RendezvousHTTPServer
    from horovod.runner.util.threads import in_thread

    check_port_free(port)
    server = RendezvousHTTPServer(("", port), RendezvousHandler, 0)
    server.init(plan)
    in_thread(target=server.serve_forever)
    return server


def _gloo_env_from_slurm(info: LaunchInfo, port: int, startup_s: float):
    """Set Horovod's Gloo variables for this srun task; rank 0 also starts the server."""
    plan = _slurm_plan(info)
    server = None
    if info.rank == 0:
        server = _serve_rendezvous(plan, port)
    else:
        wait_for_port(info.hosts[0], port, startup_s, "Horovod's rendezvous (served by rank 0)")
    slot = plan[info.rank]
    os.environ.update({
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": info.hosts[0],
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_HOSTNAME": slot.hostname,
        "HOROVOD_RANK": str(slot.rank),
        "HOROVOD_SIZE": str(slot.size),
        "HOROVOD_LOCAL_RANK": str(slot.local_rank),
        "HOROVOD_LOCAL_SIZE": str(slot.local_size),
        "HOROVOD_CROSS_RANK": str(slot.cross_rank),
        "HOROVOD_CROSS_SIZE": str(slot.cross_size),
    })
    os.environ.setdefault("HOROVOD_GLOO_TIMEOUT_SECONDS", str(int(startup_s)))
    if all(h in ("localhost", "127.0.0.1") for h in info.hosts):
        os.environ.setdefault("HOROVOD_GLOO_IFACE", "lo")
    return server


class HorovodBackend(CollectiveBackend):
    """Horovod ranks started by horovodrun, or by srun with a Gloo rendezvous on rank 0."""

    name = "horovod"
    lost_errors = _LOST

    def __init__(self, info: LaunchInfo, timeouts: Timeouts | None = None,
                 rendezvous_port: int = 29400):
        if hvd is None:
            raise DistributedError("--backend horovod: Horovod is not installed in this "
                                   "environment; run `make horovod` or use --backend tf")
        self._init_guard(int(os.environ.get("SLURM_PROCID", 0)), timeouts)
        self._server = None
        if info.source == "slurm" and info.size > 1 and not hvd.mpi_built():
            self._server = _gloo_env_from_slurm(info, rendezvous_port, self.timeouts.startup)
        hvd.init()
        if info.size > 1 and hvd.size() != info.size:
            raise DistributedError(
                f"mismatched world size: {info.source} started {info.size} processes but "
                f"Horovod joined {hvd.size()}; launch with horovodrun --gloo or srun")
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.device = pin_gpu(self.local_rank)
        self.watchdog.rank = self.rank

    def _broadcast_from_chief(self, variables: list) -> None:
        hvd.broadcast_variables(variables, root_rank=0)

    def _mean_tensor(self, tensor):
        return hvd.allreduce(tensor, op=hvd.Average, name="ffjord_mean")

    def train_step(self, loss_and_grad, apply):
        @tf.function
        def step(x, condition=None):
            loss, aux, grads = loss_and_grad(x, condition)
            # A gather from a variable gives IndexedSlices gradients; Horovod's grouped
            # allreduce takes all dense or all sparse, so densify (they cover every row anyway).
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                     for g in grads]
            present = [i for i, g in enumerate(grads) if g is not None]
            keys = sorted(aux)
            values = [grads[i] for i in present] + [loss] + [aux[k] for k in keys]
            reduced = hvd.grouped_allreduce(values, op=hvd.Average, name="ffjord_step")
            grads = list(grads)
            for i, g in zip(present, reduced, strict=False):
                grads[i] = g
            loss = reduced[len(present)]
            aux = dict(zip(keys, reduced[len(present) + 1:], strict=True))
            apply(grads)
            return loss, aux

        return guarded_step(step, self.watchdog, self.timeouts.first_step, self.timeouts.step,
                            self.lost_errors)

    def shutdown(self) -> None:
        self.barrier()
        hvd.shutdown()
        if self._server is not None:
            self._server.shutdown()
