"""What the end-to-end studies share: a fresh copy of the work tree in a temporary folder and running commands in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from taste.config import REPO_ROOT

BIN = Path(sys.executable).parent


def project_files(repo: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what a fresh clone of this work tree holds)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (repo / f).is_file()]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run `cmd` in `cwd`; fail the test with the end of its output unless it exits 0 -> stdout + stderr."""
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
    return res.stdout + res.stderr


def copy_repo(dest: Path) -> dict[str, str]:
    """A fresh copy of the work tree at dest (git-initialised) -> the environment to run its commands in."""
    for rel in project_files(REPO_ROOT):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(dest / "src"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run(["git", "init", "-q"], dest, env)
    return env
