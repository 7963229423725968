"""Atomic file output: every file fundiff writes appears whole or not at all.

Write to a temporary name in the same folder, flush and fsync, then ``os.replace`` onto the final
name (atomic on POSIX and Windows).  A killed process leaves at most a ``.tmp-*`` file behind, which
the next writer of the same name removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from fundiff.errors import FundiffError

# The process's umask, read once at import (reading it means setting it, which is not thread-safe later on).
_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed and check we can write there; FundiffError if not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FundiffError(f"output folder {path} exists and is not a folder") from None
    except OSError as exc:
        raise FundiffError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise FundiffError(f"output folder {path} exists and is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise FundiffError(f"output folder {path} is not writable: {exc.strerror or exc}") from None
    return path


def ensure_writable_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written as a file: its folder is made and writable
    (:func:`ensure_writable_dir`) and ``path`` is not itself a folder; FundiffError if not."""
    path = Path(path)
    if path.is_dir():
        raise FundiffError(f"{what} {path} is a folder: give a file name")
    ensure_writable_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, with the permissions a
    plain ``open(path, "w")`` would give (0666 less the umask; mkstemp's own 0600 would hide outputs from others)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
