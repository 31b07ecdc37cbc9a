"""Atomic file output: a kill at any moment leaves either the old file or the new one.

Every writer goes to a temporary file in the same folder, fsyncs it, then `os.replace`s it
over the target (atomic on POSIX). Directories (model saves, checkpoints) are written to a
temporary sibling and swapped in with a rename, keeping the previous copy until the new one
is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and check it is writable; UserError in one line if not."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {p}: {exc.strerror}") from None
    if not os.access(p, os.W_OK):
        raise UserError(f"output folder {p} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp's 0600 would hide the user's files from others
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "numpy"):  # tf.Tensor
        return _to_jsonable(obj.numpy())
    return obj


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` (numpy/tf values allowed) as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(_to_jsonable(obj), indent=2, sort_keys=False) + "\n")
    return Path(target)


def save_figure(fig, target: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically (format from the target's suffix) and close it."""
    import matplotlib.pyplot as plt

    target = Path(target)
    with atomic_path(target, suffix=target.suffix) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", **kwargs)
    plt.close(fig)
    return target


def replace_dir(tmp_dir: Path, target: str | os.PathLike) -> Path:
    """Swap a fully written `tmp_dir` in place of `target` (the old copy removed afterwards)."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp_dir, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def new_tmp_dir(target: str | os.PathLike) -> Path:
    """A fresh temporary folder beside `target`, for writing before `replace_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))


def existing_dir(target: str | os.PathLike) -> Path | None:
    """The folder `replace_dir` last completed: `target`, or its `.old` copy if a kill landed
    between the two renames. None when neither exists."""
    target = Path(target)
    if target.is_dir():
        return target
    old = target.with_name(f".{target.name}.old")
    return old if old.is_dir() else None
