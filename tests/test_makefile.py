"""The README's `make test` with a bad TEST_WORKERS: one line and exit 2 when make reads the Makefile, before it installs
anything or starts pytest (make -n runs nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_n(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``make -n test ARGS`` as a user types it: not as a sub-make of the ``make test`` that runs this suite."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return subprocess.run(["make", "-n", "test", *args], capture_output=True, text=True, cwd=cwd, timeout=60, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("workers", ["abc", "0", "-1", "007", "", "%", "2 -k x", "1; true", "2'; echo '3"])
def test_a_bad_worker_count_is_one_line_and_exit_2(workers):
    proc = make_n(f"TEST_WORKERS={workers}")
    assert proc.returncode == 2 and "pytest" not in proc.stdout
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and f"TEST_WORKERS must be a whole number of test processes (1-999), got '{workers}'" in err


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_worker_counts_reach_pytest():
    assert "pytest -n 3 --dist loadfile" in make_n("TEST_WORKERS=3").stdout
    one = make_n("TEST_WORKERS=1").stdout
    assert "-m pytest" in one and "-n " not in one.split("-m pytest", 1)[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_a_fresh_clone_is_refused_before_the_install(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert "venv" in make_n("TEST_WORKERS=2", cwd=tmp_path).stdout     # no .venv here: make would install first
    refused = make_n("TEST_WORKERS=two", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == "" and "got 'two'" in refused.stderr
