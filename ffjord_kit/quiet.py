"""TensorFlow's start-up lines hidden unless asked for (`--verbose` or FFJORD_KIT_VERBOSE=1).

On a CPU laptop TensorFlow prints, while it is imported, oneDNN and CUDA notices, and on its
first op `E0000 ... failed call to cuInit: ... CUDA error`, which reads as a failure. These
come from C++ logging before Python can configure it, so the first `import tensorflow` runs
with file descriptor 2 pointed at /dev/null and TF_CPP_MIN_LOG_LEVEL=3 (Python exceptions
still propagate). `install()` arms this once; it costs nothing until TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys

VERBOSE_ENV = "FFJORD_KIT_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool = True) -> None:
    """Show TensorFlow's messages (call before TensorFlow is imported)."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if verbose():
            return self._loader.exec_module(module)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _stderr_silenced():
            return self._loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Arm the quiet import (no effect when TensorFlow is already imported)."""
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
