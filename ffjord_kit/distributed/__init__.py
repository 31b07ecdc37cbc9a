"""Data-parallel backends behind one small interface (see backend.py).

`make_backend("auto" | "horovod" | "tf" | "none")` (factory.py) starts the engine the launcher
asks for; HorovodBackend and TFMultiWorkerBackend are imported lazily, only when chosen, so
the project works without Horovod.
"""

from .backend import Backend, SingleProcess
from .factory import make_backend
from .launch import (
    BACKEND_CHOICES,
    DistributedError,
    LaunchInfo,
    Timeouts,
    choose_backend,
    detect_launch,
    horovod_available,
)

__all__ = ["BACKEND_CHOICES", "Backend", "DistributedError", "LaunchInfo", "SingleProcess",
           "Timeouts", "choose_backend", "detect_launch", "horovod_available", "make_backend"]
