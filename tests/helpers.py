"""Helpers the tests share (imported as ``from helpers import ...``; conftest only holds fixtures)."""

import os
import socket
import subprocess
import sys


def core_share() -> int:
    """Threads one long run may take: every core, divided among pytest-xdist's workers (``make test`` runs 2), since
    two processes that each take every core slow each other several-fold."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run ``python -m fundiff ARGS`` and return the CompletedProcess (text mode)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fundiff", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=full_env,
    )


def assert_one_line_error(proc, *fragments):
    """Exit code 2, no traceback, one line on stderr containing every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def write_png_bomb(path, width, height):
    """A valid greyscale PNG of ``width`` x ``height`` black pixels, a few hundred KB on disk however large it
    decodes (a decompression bomb), written row by row so that making it takes no memory."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(width + 1)   # filter byte 0, then the pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
