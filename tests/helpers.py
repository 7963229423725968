"""Helpers the tests share (imported as ``from helpers import ...``; conftest only holds fixtures)."""

import os
import subprocess
import sys


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
