"""User-facing errors.

Anything the user can fix (a missing file, a bad flag value, an unwritable folder) is raised as
:class:`FundiffError`.  The CLI prints its message as one line and exits with code 2; the Python
API lets it propagate like any other exception.
"""

from __future__ import annotations

from typing import Callable


def one_line(obj: object) -> str:
    """An exception (or any object) as one line of text: whitespace runs folded, never empty."""
    return " ".join(str(obj).split()) or type(obj).__name__


class FundiffError(Exception):
    """An error caused by the user's input, reported as one line and exit code 2 by the CLI."""

    exit_code = 2


class DataError(FundiffError):
    """A data set is missing, truncated or corrupt."""


class CheckpointError(FundiffError):
    """A checkpoint is missing, corrupt, or belongs to another model or run."""


def run_script(main: Callable[[], object], prog: str) -> int:
    """Run a script's ``main()`` as the CLI runs a command: a FundiffError is one line on stderr and its exit code
    (2), Ctrl-C is "interrupted; nothing was written" and 130 (scripts write their results only at the end)."""
    import sys

    try:
        main()
    except FundiffError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
