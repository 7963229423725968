"""The README's shell examples run as written: every ``fundiff ...`` line of its bash blocks, in order, in a scratch
folder whose HOME holds tiny random DeepFloyd IF folders where the README says ``~/IF-I-XL-v1.0`` (no GPU needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import core_share

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# Lines that are not run here, and why (each is exercised elsewhere).
NOT_RUN = {
    "fundiff serve": "serves until stopped; tests/test_web_browser.py starts it and drives it in a browser",
    "fundiff report --quick": "tests/test_report.py runs this same command (main(['report', '--quick', '--out', ...])) "
                              "and checks every section, figure and claim of it; running it twice cost 70-90 s",
    "fundiff report --model deepfloyd": "the full report trains Part B (~8 min); tests/test_report_deepfloyd.py runs it "
                                        "with --quick on the same tiny IF folders",
}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines]
    return [c for c in commands if c.startswith("fundiff ")]


def test_the_readme_shows_the_first_commands():
    commands = readme_commands()
    assert any(c.startswith("fundiff sample") for c in commands) and any(c.startswith("fundiff anagram") for c in commands)
    assert any(c.startswith("fundiff embed") for c in commands)


def test_readme_commands_run_as_written(tmp_path):
    pytest.importorskip("diffusers")
    from deepfloyd_tiny import save_pipeline

    home = tmp_path / "home"
    save_pipeline(home / "IF-I-XL-v1.0", stage=1)
    save_pipeline(home / "IF-II-L-v1.0", stage=2)
    work = tmp_path / "work"
    work.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"   # the installed `fundiff`
    # every thread (this test worker's share of them), as a user's shell has them: the commands run one at a time and
    # nothing compares bits across runs
    env = {**os.environ, "OMP_NUM_THREADS": str(core_share()), "PATH": path, "HOME": str(home),
           "HF_HUB_OFFLINE": "1"}
    ran = []
    for command in readme_commands():
        if any(command.startswith(skip) for skip in NOT_RUN):
            continue
        proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (command, proc.stderr[-2000:])
        ran.append(command.split()[1])
    assert ran == ["sample", "sample", "anagram", "embed", "generate"]
    for made in ("sevens.png", "sevens-fast.png", "runs/anagram/anagram.png", "runs/anagram/anagram.gif",
                 "prompts.pth", "runs/if/generate.png", "runs/if/upsampled.png"):
        assert (work / made).is_file(), made
