"""The ``fundiff`` command: a thin layer over the Python API (the subcommands live in :mod:`fundiff.commands`).

Every subcommand has ``--help``.  Errors the user can fix print one line and exit with code 2;
Ctrl-C during training saves a checkpoint and exits with 130 (rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from fundiff import __version__
from fundiff.errors import FundiffError


def build_parser() -> argparse.ArgumentParser:
    from fundiff.commands.arguments import Parser   # torch and the commands load here, inside main's Ctrl-C handling

    parser = Parser(prog="fundiff", description="Diffusion and flow-matching image generation: the 'Fun With Diffusion Models' study as software.")
    parser.add_argument("--version", action="version", version=f"fundiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    from fundiff.commands import distill, editing, part_a, part_b, serve

    part_b.register(sub)
    distill.register(sub)
    part_a.register(sub)
    editing.register(sub)
    serve.register(sub)
    return parser


def _terminate_as_interrupt(signum, frame) -> None:  # noqa: ANN001
    """SIGTERM (``kill``, a batch system stopping the job) acts as Ctrl-C: the same checkpoint, clean-up and message."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)   # the trainer's: stop after the current step, then checkpoint
    else:
        raise KeyboardInterrupt


def _entries(folder: Path) -> dict[str, int]:
    """name -> modification time (ns) of what ``folder`` holds now (nothing if it is not a folder)."""
    return {p.name: p.lstat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def _undo_new_files(folder: Path, before: dict[str, int]) -> list[str]:
    """Remove the files this run added to ``folder`` (an interrupt while its files were being written: these commands
    write plain files, never folders); return the names of files it held before that the run had already replaced."""
    now = _entries(folder)
    for name in set(now) - set(before):
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    return sorted(name for name in set(now) & set(before) if now[name] != before[name])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:   # while torch loads: a second or two at the start, before any work
        print("fundiff: interrupted; nothing was written", file=sys.stderr)
        return 130
    from fundiff.engine.pixel_limit import pixel_limit

    out = getattr(args, "out", None)
    new_folder = isinstance(out, Path) and not out.suffix and not out.exists()   # an output folder this run makes
    folder_out = isinstance(out, Path) and not out.suffix
    before = _entries(out) if folder_out else {}
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt) if in_main_thread else None
    try:
        with pixel_limit(args.max_image_pixels) if getattr(args, "max_image_pixels", None) else contextlib.nullcontext():
            return args.func(args)
    except FundiffError as exc:
        print(f"fundiff: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        command = getattr(args, "command", None)
        if command == "report":
            hint = "rerun the same command to continue (finished trainings are reused)"
        elif command in ("train", "study", "distill"):
            hint = "the latest checkpoint is saved, rerun with --resume to continue"
        else:   # sampling and editing commands write their files only after their last model call
            replaced = _undo_new_files(out, before) if folder_out else []   # interrupted among those writes
            hint = (f"nothing new was kept, but {len(replaced)} earlier file(s) in {out} were already replaced: "
                    f"{', '.join(replaced)}") if replaced else "nothing was written"
        print(f"fundiff: interrupted; {hint}", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"fundiff: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if new_folder and out.is_dir() and not any(out.iterdir()):
            out.rmdir()   # an error or Ctrl-C before the first file: no empty output folder either


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
