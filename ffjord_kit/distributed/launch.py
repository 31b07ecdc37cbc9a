"""Which data-parallel engine to start, and where this process sits in the job.

Three launchers are understood, read from the environment only (no TensorFlow import here):

- `horovodrun` (HOROVOD_RANK / HOROVOD_SIZE / HOROVOD_LOCAL_RANK ...),
- SLURM's `srun` (SLURM_PROCID, SLURM_LOCALID, SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST,
  SLURM_STEP_TASKS_PER_NODE, SLURMD_NODENAME),
- TensorFlow's TF_CONFIG (`{"cluster": {"worker": ["host:port", ...]}, "task": {...}}`).

`choose_backend("auto")` picks Horovod when it is importable and the job has several ranks,
else TensorFlow's MultiWorkerMirroredStrategy under SLURM or TF_CONFIG, else one process.
`factory.make_backend(...)` builds it. Everything the user can get wrong (a world size that does not
add up, Horovod missing when asked for, a port already in use) raises `DistributedError`,
one line that says what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UserError

BACKEND_CHOICES = ("auto", "horovod", "tf", "none")
# First gRPC port of TensorFlow's workers on a node (task i uses base + local index), and the
# port rank 0 serves Horovod's Gloo rendezvous on under srun. Overridable per job.
DEFAULT_TF_PORT_BASE = 8888
DEFAULT_RENDEZVOUS_PORT = 29400


class DistributedError(UserError):
    """A multi-process job that cannot start or cannot go on (one line, says what to do)."""


@dataclass(frozen=True)
class LaunchInfo:
    """Where this process sits. source: 'horovodrun', 'slurm', 'tf_config' or 'none'.

    hosts: node names in launch order, one per node; tasks_per_host: ranks on each of them.
    host: this process's node. For TF_CONFIG, hosts lists one entry per worker address.
    """

    source: str
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    hosts: tuple[str, ...] = ("localhost",)
    tasks_per_host: tuple[int, ...] = (1,)
    host: str = "localhost"
    port: int | None = None  # TF_CONFIG: this worker's gRPC port

    def tf_port(self, port_base: int) -> int:
        """The gRPC port TensorFlow's engine binds for this worker."""
        return self.port if self.port is not None else port_base + self.local_rank

    @property
    def node_index(self) -> int:
        """Index of this process's node in `hosts` (Horovod's cross rank)."""
        return self.hosts.index(self.host) if self.host in self.hosts else 0


# --------------------------------------------------------------------------- SLURM strings
def expand_hostlist(hostlist: str) -> list[str]:
    """SLURM's compressed node list -> names: 'nid[001-002,007],login3' -> 4 names."""
    names: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", hostlist):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not m:
            names.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for item in ranges.split(","):
            lo, _, hi = item.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise DistributedError(f"cannot parse SLURM node list {hostlist!r}")
            for i in range(int(lo), int(hi or lo) + 1):
                names.append(f"{prefix}{i:0{len(lo)}d}{suffix}")
    return names


def expand_tasks_per_node(spec: str) -> list[int]:
    """SLURM's tasks-per-node string -> counts: '4(x3),2' -> [4, 4, 4, 2]."""
    counts: list[int] = []
    for item in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", item.strip())
        if not m:
            raise DistributedError(f"cannot parse SLURM tasks-per-node {spec!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def _int_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        raise DistributedError(f"environment variable {name}={env.get(name)!r} is missing or "
                               "not an integer") from None


def slurm_launch(env: Mapping[str, str]) -> LaunchInfo | None:
    """The srun job step this process belongs to, or None outside `srun` (the batch script
    itself has SLURM_JOB_ID but no SLURM_STEP_NUM_TASKS)."""
    if "SLURM_STEP_NUM_TASKS" not in env or "SLURM_PROCID" not in env:
        return None
    size = _int_env(env, "SLURM_STEP_NUM_TASKS")
    rank = _int_env(env, "SLURM_PROCID")
    local_rank = _int_env(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
    hosts = expand_hostlist(env.get("SLURM_STEP_NODELIST", env.get("SLURM_JOB_NODELIST", "")))
    counts = expand_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE", str(size)))
    if len(counts) != len(hosts):
        raise DistributedError(
            f"SLURM lists {len(hosts)} nodes ({','.join(hosts)}) but tasks for {len(counts)} "
            f"(SLURM_STEP_TASKS_PER_NODE={env.get('SLURM_STEP_TASKS_PER_NODE')!r})")
    if sum(counts) != size:
        raise DistributedError(
            f"mismatched world size: SLURM_STEP_NUM_TASKS={size} but the tasks per node add up "
            f"to {sum(counts)}; launch with srun inside one allocation, not by hand")
    if not 0 <= rank < size:
        raise DistributedError(f"SLURM_PROCID={rank} is outside 0..{size - 1}")
    host = env.get("SLURMD_NODENAME") or socket.gethostname()
    if host not in hosts:
        raise DistributedError(f"this node {host!r} is not in the step's node list {hosts}")
    local_size = counts[hosts.index(host)]
    if not 0 <= local_rank < local_size:
        raise DistributedError(f"SLURM_LOCALID={local_rank} but {host} runs {local_size} tasks")
    # Both engines number ranks node by node (block distribution); a cyclic layout would give
    # two processes the same address.
    first = sum(counts[:hosts.index(host)])
    if rank != first + local_rank:
        raise DistributedError(
            f"SLURM task layout is not block-distributed (rank {rank} is local task {local_rank}"
            f" on node {host}); launch with srun --distribution=block")
    return LaunchInfo("slurm", rank, size, local_rank, local_size, tuple(hosts), tuple(counts),
                      host)


def tf_config_launch(env: Mapping[str, str]) -> LaunchInfo | None:
    """The TF_CONFIG cluster this process belongs to, or None without TF_CONFIG."""
    raw = env.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        workers = list(cfg["cluster"].get("chief", [])) + list(cfg["cluster"]["worker"])
        task_type, index = cfg["task"]["type"], int(cfg["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DistributedError("TF_CONFIG must be JSON like {\"cluster\": {\"worker\": "
                               "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", "
                               "\"index\": 0}}") from None
    n_chief = len(cfg["cluster"].get("chief", []))
    if task_type not in ("worker", "chief"):
        raise DistributedError(f"TF_CONFIG task type {task_type!r} is not 'worker' or 'chief'")
    rank = index if task_type == "chief" else n_chief + index
    if not 0 <= rank < len(workers):
        raise DistributedError(f"mismatched world size: TF_CONFIG task index {index} but the "
                               f"cluster lists {len(workers)} workers")
    hosts = tuple(w.rsplit(":", 1)[0] for w in workers)
    local = [i for i, h in enumerate(hosts) if h == hosts[rank]]
    port = workers[rank].rsplit(":", 1)[-1]
    if not port.isdigit():
        raise DistributedError(f"TF_CONFIG worker address {workers[rank]!r} is not host:port")
    return LaunchInfo("tf_config", rank, len(workers), local.index(rank), len(local), hosts,
                      (1,) * len(workers), hosts[rank], int(port))


def horovodrun_launch(env: Mapping[str, str]) -> LaunchInfo | None:
    """The `horovodrun` slot of this process, or None when not started by horovodrun."""
    if "HOROVOD_RANK" not in env or "HOROVOD_SIZE" not in env:
        return None
    size = _int_env(env, "HOROVOD_SIZE")
    rank = _int_env(env, "HOROVOD_RANK")
    local_rank = int(env.get("HOROVOD_LOCAL_RANK", 0))
    local_size = int(env.get("HOROVOD_LOCAL_SIZE", 1))
    host = env.get("HOROVOD_HOSTNAME", "localhost")
    return LaunchInfo("horovodrun", rank, size, local_rank, local_size, (host,), (local_size,),
                      host)


def detect_launch(env: Mapping[str, str] | None = None) -> LaunchInfo:
    """Where this process sits; horovodrun first (it may run inside a SLURM allocation)."""
    env = os.environ if env is None else env
    for probe in (horovodrun_launch, slurm_launch, tf_config_launch):
        info = probe(env)
        if info is not None:
            return info
    return LaunchInfo("none")


def horovod_available() -> bool:
    """True when `horovod.tensorflow` can be imported (see `make horovod`)."""
    try:
        return importlib.util.find_spec("horovod.tensorflow") is not None
    except (ImportError, ValueError):
        return False


def choose_backend(requested: str = "auto", env: Mapping[str, str] | None = None) -> str:
    """'horovod', 'tf' or 'none' for a requested 'auto' | 'horovod' | 'tf' | 'none'."""
    env = os.environ if env is None else env
    if requested not in BACKEND_CHOICES:
        raise DistributedError(f"unknown backend {requested!r}; choose one of "
                               f"{', '.join(BACKEND_CHOICES)}")
    info = detect_launch(env)
    if requested == "horovod" and not horovod_available():
        raise DistributedError("--backend horovod: Horovod is not installed in this environment;"
                               " run `make horovod` (builds it, about 11 min) or use --backend tf")
    if requested == "tf" and info.source == "horovodrun":
        raise DistributedError("--backend tf under horovodrun: launch TensorFlow workers with "
                               "srun or TF_CONFIG instead, or use --backend horovod")
    if requested != "auto":
        return requested
    if info.size > 1 and horovod_available() and info.source in ("horovodrun", "slurm"):
        return "horovod"
    if info.source in ("slurm", "tf_config") and info.size > 1:
        return "tf"
    return "none"


# --------------------------------------------------------------------------- ports, devices
def check_port_free(port: int, host: str = "") -> None:
    """DistributedError when `port` cannot be bound on this machine (another job holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise DistributedError(
                f"port {port} on {socket.gethostname()} is in use (another job or a stale "
                "worker?); pick other ports with --port_base / FFJORD_KIT_PORT_BASE or TF_CONFIG"
            ) from None


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on the loopback right now (held open together, then freed)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    """Poll until host:port accepts connections; DistributedError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            if s.connect_ex((host, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise DistributedError(f"{what} at {host}:{port} did not come up within "
                                   f"{timeout_s:.0f} s; did rank 0 start (see its log)?")
        time.sleep(0.2)


def gpus_on_node(env: Mapping[str, str] | None = None) -> int:
    """GPUs this process may use, from the environment only (TensorFlow not yet started)."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    for name in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        value = env.get(name, "").rsplit(":", 1)[-1]
        if value.isdigit():
            return int(value)
    return 0


def pin_gpu(local_rank: int) -> str | None:
    """Make only GPU `local_rank` (mod count) visible to TensorFlow; must run before any op.

    Returns the device name, or None on a machine without GPUs.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    gpu = gpus[local_rank % len(gpus)]
    tf.config.set_visible_devices([gpu], "GPU")
    tf.config.experimental.set_memory_growth(gpu, True)
    return gpu.name


# --------------------------------------------------------------------------- construction
def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not a number of seconds") from None


@dataclass(frozen=True)
class Timeouts:
    """Bounds on waiting for other ranks (s). first_step covers tracing / XLA compilation,
    step every later step, startup the rendezvous. From FFJORD_KIT_{STEP,FIRST_STEP,STARTUP}
    _TIMEOUT when set."""

    step: float = 600.0
    first_step: float = 1800.0
    startup: float = 300.0

    @classmethod
    def from_env(cls) -> Timeouts:
        d = cls()
        return cls(step=env_float("FFJORD_KIT_STEP_TIMEOUT", d.step),
                   first_step=env_float("FFJORD_KIT_FIRST_STEP_TIMEOUT", d.first_step),
                   startup=env_float("FFJORD_KIT_STARTUP_TIMEOUT", d.startup))
