"""Bounded waiting on other ranks: a dead rank ends the job with a clear error, never a hang.

A collective (all-reduce, broadcast, barrier) blocks inside C++ until every rank joins; when a
rank has died the survivors may wait forever. Every blocking call runs under `Watchdog.guard`,
which arms a deadline; a daemon thread ends the process (exit 3) with one line on stderr once
the deadline passes. Errors the engine does raise (a closed connection) become
`PeerLostError`, also one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

from .launch import DistributedError

EXIT_PEER_LOST = 3


class PeerLostError(DistributedError):
    """Another rank died or stopped answering during a collective."""


class Watchdog:
    """Deadline for one blocking call at a time; a background thread enforces it."""

    def __init__(self, rank: int, poll_s: float = 0.5):
        self.rank = rank
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self._timeout = 0.0
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="ffjord-watchdog",
                                            daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(self._poll_s)
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                what, timeout = self._what, self._timeout
            if late:
                print(f"error: rank {self.rank}: {what} got no answer from the other ranks for "
                      f"{timeout:.0f} s; another rank has probably died (see its log). "
                      "Exiting; raise FFJORD_KIT_STEP_TIMEOUT if steps are just slow.",
                      file=sys.stderr, flush=True)
                # A thread cannot interrupt a C++ collective: leave the process at once.
                os._exit(EXIT_PEER_LOST)

    @contextlib.contextmanager
    def guard(self, what: str, timeout_s: float) -> Iterator[None]:
        """Run the body with a deadline of timeout_s seconds."""
        self._start()
        with self._lock:
            self._deadline, self._what, self._timeout = time.monotonic() + timeout_s, what, \
                timeout_s
        try:
            yield
        finally:
            with self._lock:
                self._deadline = None


def call_guarded(watchdog: Watchdog, what: str, timeout_s: float,
                 lost_errors: tuple[type[BaseException], ...], fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs) under a deadline, the engine's lost-peer errors -> PeerLostError."""
    with watchdog.guard(what, timeout_s):
        try:
            return fn(*args, **kwargs)
        except lost_errors as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PeerLostError(f"rank {watchdog.rank}: {what} failed because another rank is "
                                f"gone or unreachable ({first})") from None


def guarded_step(step: Callable, watchdog: Watchdog, first_timeout_s: float,
                 timeout_s: float, lost_errors: tuple[type[BaseException], ...],
                 what: str = "training step") -> Callable:
    """`step` under `call_guarded`, with a longer deadline for the first call (tracing,
    compilation)."""
    calls = [0]

    def run(*args, **kwargs):
        limit = first_timeout_s if calls[0] == 0 else timeout_s
        calls[0] += 1
        return call_guarded(watchdog, what, limit, lost_errors, step, *args, **kwargs)

    run.__wrapped__ = step
    return run
