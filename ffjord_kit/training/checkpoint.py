"""Training checkpoints for every flow family: atomic, verified, with a fallback, and a lock.

A checkpoint is one folder holding
  - `tf/`: a `tf.train.Checkpoint` of the flow (weights, batch-norm statistics, random
    generators) and the optimizer (step count, Adam moments, learning-rate variable),
  - `best.npz`: the weights of the best validation epoch (early stopping restores them),
  - `state.json`: epoch, step within the epoch, learning rate, schedule states, history, the
    flow's family and architecture (checked on resume) and the loop's bookkeeping,
  - `manifest.json`: the SHA-256 of every other file, checked before the checkpoint is used.
`<run>/checkpoint/` is the newest, `<run>/checkpoint.prev/` the one before. A save writes a
temporary sibling, then rotates newest -> previous and swaps the new one in, so a kill at any
moment (SIGKILL included) leaves at least one complete checkpoint. On load, a damaged newest
checkpoint (checksum or read failure) falls back to the previous one with a one-line warning;
when none is usable the error is one line.

`RunLock` keeps two jobs from training into one run folder at once; a lock left by a killed
job (its process gone on this host, or no heartbeat for `stale_after` seconds) is taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import UserError
from ..fileio import new_tmp_dir

STATE_FILE = "state.json"
MANIFEST = "manifest.json"


@contextlib.contextmanager
def rank_target(path: str | Path, backend) -> Iterator[Path | None]:
    """Where this rank writes what rank 0 writes to `path`: `path` on rank 0; a throwaway
    folder on the others when the backend needs every rank to write (TF's engine); else None
    (nothing to write)."""
    if backend.is_chief:
        yield Path(path)
    elif backend.writes_on_all_ranks:
        with tempfile.TemporaryDirectory(prefix=f"ffjord_kit_rank{backend.rank}_") as scratch:
            yield Path(scratch) / Path(path).name
    else:
        yield None


class CheckpointStore:
    """Save and load the checkpoints of one run (rank 0 saves; every rank may load)."""

    def __init__(self, folder: str | Path, flow, optimizer,
                 warn: Callable[[str], None] = print):
        self.path = Path(folder) / "checkpoint"
        self.previous = Path(folder) / "checkpoint.prev"
        self.flow, self.optimizer, self.warn = flow, optimizer, warn
        # Test hook: called with the temporary folder once it is fully written, before the swap.
        self.before_swap: Callable[[Path], None] | None = None

    def _tracker(self) -> tf.train.Checkpoint:
        # One Checkpoint object per store: a new one traces its save function again (about
        # 0.1 s, every epoch).
        if getattr(self, "_checkpoint", None) is None:
            self._checkpoint = tf.train.Checkpoint(flow=self.flow, optimizer=self.optimizer)
        return self._checkpoint

    def candidates(self) -> list[Path]:
        """Checkpoint folders present, newest first."""
        return [p for p in (self.path, self.previous) if (p / STATE_FILE).is_file()]

    def exists(self) -> bool:
        return bool(self.candidates())

    def save(self, state: dict[str, Any], best_weights: list[np.ndarray] | None) -> Path:
        """Write model, optimizer, best weights and `state` (JSON-able) atomically; the
        checkpoint it replaces becomes the previous one."""
        self.remove_stale_temporaries()
        tmp = new_tmp_dir(self.path)
        self._tracker().write(str(tmp / "tf" / "ckpt"))
        if best_weights is not None:
            np.savez(tmp / "best.npz", *best_weights)
        (tmp / STATE_FILE).write_text(json.dumps(_jsonable(state), indent=1))
        (tmp / MANIFEST).write_text(json.dumps(_checksums(tmp), indent=1))
        if self.before_swap is not None:
            self.before_swap(tmp)
        if self.path.is_dir():
            if self.previous.exists():
                shutil.rmtree(self.previous)
            os.replace(self.path, self.previous)
        os.replace(tmp, self.path)
        return self.path

    def load(self) -> tuple[dict[str, Any], list[np.ndarray] | None]:
        """Restore flow and optimizer in place from the newest usable checkpoint; returns
        (state, best weights or None)."""
        found = self.candidates()
        if not found:
            raise UserError(f"no checkpoint to resume from at {self.path} "
                            f"(expected {self.path / STATE_FILE}); run without --load first")
        problems = []
        for folder in found:
            try:
                result = self._load_one(folder)
            except _Damaged as exc:
                problems.append(f"{folder.name}: {exc}")
                continue
            if problems:
                self.warn(f"warning: checkpoint {problems[0]}; resumed from {folder} instead")
            return result
        raise UserError(f"no usable checkpoint in {self.path.parent} ("
                        f"{'; '.join(problems)}); start again without --load in a new --out")

    def _load_one(self, folder: Path) -> tuple[dict[str, Any], list[np.ndarray] | None]:
        _verify(folder)
        try:
            state = json.loads((folder / STATE_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Damaged(f"state.json unreadable ({exc})") from None
        saved = state.get("flow_config")
        current = {"family": self.flow.family, **self.flow.config_dict()}
        if saved is not None and saved != json.loads(json.dumps(current)):
            diff = sorted(k for k in set(saved) | set(current)
                          if saved.get(k) != json.loads(json.dumps(current.get(k))))
            raise UserError(f"checkpoint {folder} was written for a different model "
                            f"(differs in {', '.join(diff)}); use the config it was trained "
                            f"with or a new --out folder")
        try:
            self._tracker().read(str(folder / "tf" / "ckpt")).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as exc:
            raise _Damaged(f"weights unreadable ({_first_line(exc)})") from None
        best = None
        if (folder / "best.npz").is_file():
            try:
                with np.load(folder / "best.npz") as data:
                    best = [data[f"arr_{i}"] for i in range(len(data.files))]
            except (OSError, ValueError, KeyError) as exc:
                raise _Damaged(f"best.npz unreadable ({_first_line(exc)})") from None
        return state, best

    def remove_stale_temporaries(self) -> None:
        """Delete half-written temporary folders left by a killed save."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


class _Damaged(Exception):
    """A checkpoint folder that fails its checksum or cannot be read."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _checksums(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            digest = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            out[str(f.relative_to(folder))] = digest.hexdigest()
    return out


def _verify(folder: Path) -> None:
    """_Damaged unless every file listed in the manifest is present with its checksum."""
    try:
        expected = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise _Damaged(f"{MANIFEST} missing or unreadable ({_first_line(exc)})") from None
    actual = _checksums(folder)
    bad = sorted(name for name, digest in expected.items() if actual.get(name) != digest)
    if bad:
        raise _Damaged(f"{len(bad)} file(s) fail their checksum ({', '.join(bad[:3])})")


class RunLock:
    """An exclusive lock on a run folder (`<run>/.lock`, JSON: host, pid, heartbeat).

        with RunLock(run_dir):
            ...train...

    A live holder makes `acquire` raise a one-line UserError. A lock is stale, and is taken
    over with a warning, when its process is gone on this host or its heartbeat (refreshed by
    `beat`, at most every `beat_every` seconds) is older than `stale_after` seconds.
    """

    def __init__(self, run_dir: str | Path, stale_after: float = 600.0, beat_every: float = 30.0,
                 warn: Callable[[str], None] = print):
        self.path = Path(run_dir) / ".lock"
        self.stale_after, self.beat_every, self.warn = stale_after, beat_every, warn
        self._last_beat = 0.0
        self._held = False

    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time(),
                "slurm_job": os.environ.get("SLURM_JOB_ID")}

    def _holder_alive(self, holder: dict) -> bool:
        if holder.get("host") == socket.gethostname():
            try:
                os.kill(int(holder["pid"]), 0)
            except ProcessLookupError:
                return False
            except (PermissionError, KeyError, TypeError, ValueError):
                return True
            return True
        return time.time() - float(holder.get("heartbeat", 0)) < self.stale_after

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                except (OSError, json.JSONDecodeError):
                    holder = {}
                if holder and self._holder_alive(holder):
                    job = f" (SLURM job {holder['slurm_job']})" if holder.get("slurm_job") else ""
                    raise UserError(f"{self.path.parent} is in use by process {holder.get('pid')} "
                                    f"on {holder.get('host')}{job}; wait for it to end or use "
                                    f"another --out") from None
                self.warn(f"warning: taking over the stale lock {self.path} (process "
                          f"{holder.get('pid', '?')} on {holder.get('host', '?')} is gone)")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self._record(), fh)
            self._held, self._last_beat = True, time.time()
            return self
        raise UserError(f"could not take the lock {self.path}; another job keeps taking it")

    def beat(self) -> None:
        """Refresh the heartbeat (cheap; writes at most every `beat_every` seconds)."""
        if self._held and time.time() - self._last_beat >= self.beat_every:
            tmp = self.path.with_name(".lock.tmp")
            tmp.write_text(json.dumps(self._record()))
            os.replace(tmp, self.path)
            self._last_beat = time.time()

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; infinities as strings (Python's float() reads them back)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return repr(obj)  # 'inf', '-inf', 'nan'
    return obj
