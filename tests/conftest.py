import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Tests share a 2-core machine: keep torch to one thread per process so subprocess tests do not fight.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mnist():
    from fundiff.data import load_mnist

    return load_mnist()


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run ``python -m fundiff ARGS`` and return the CompletedProcess (text mode)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fundiff", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli


def assert_one_line_error(proc, *fragments):
    """Exit code 2, no traceback, one line on stderr containing every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err
