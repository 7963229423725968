"""User-facing errors.

Anything the user can fix (a missing file, a bad flag value, an unwritable folder) is raised as
:class:`FundiffError`.  The CLI prints its message as one line and exits with code 2; the Python
API lets it propagate like any other exception.
"""

from __future__ import annotations


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
