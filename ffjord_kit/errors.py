"""User-facing errors and the command-line wrapper that turns them into one-line messages.

Library code raises `UserError` (or a subclass) for anything the user can fix: a malformed
config, a missing file or HDF5 key, a wrong shape, NaN rows, an unknown model name. Scripts
wrap their `main` with `run_cli`, which prints `error: <message>` on one line and exits 2,
never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class ConfigError(UserError):
    """A config file is malformed: unknown key, missing key or wrong type."""


class DataError(UserError):
    """Input data is missing, misshaped or contains invalid values."""


class ConditionError(DataError, ValueError):
    """An input or condition of the wrong shape or dtype for a flow, or a condition missing
    for a conditional flow (or given to an unconditional one). Every flow family raises it."""


class TrainingDiverged(UserError):
    """Training produced a NaN or infinite loss that could not be recovered."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's `main`; user errors become `error: ...` on stderr and exit code 2."""
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # unwritable output folder, disk full, ...
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
