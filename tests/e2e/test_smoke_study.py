"""The real pipeline, end to end, on the smoke profile: materialise + `dvc repro` in a temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taste.config import REPO_ROOT, load_params
from taste.stages import STAGE_NOTEBOOKS

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _project_files(repo: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what a fresh clone of this work tree holds)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (repo / f).is_file()]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    for rel in _project_files(REPO_ROOT):
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, dest)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(work / "src"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    _run(["git", "init", "-q"], work, env)
    _run([str(BIN / "taste"), "profile", "apply", "smoke"], work, env)
    _run([str(BIN / "taste"), "materialise"], work, env)
    log = _run([str(BIN / "dvc"), "repro"], work, env)
    return work, env, log


def test_every_stage_ran_and_reported(smoke_study):
    work, _, _ = smoke_study
    params = load_params(work / "params.yaml")
    assert params["profile"] == "smoke"
    for stage, notebook in STAGE_NOTEBOOKS.items():
        out = work / "outputs" / stage
        assert (out / f"{notebook}.ipynb").exists(), f"{stage}: executed notebook missing"
        timing = json.loads((out / "stage_time.json").read_text())
        assert timing["wall_time_s"] > 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics, f"{stage}: empty metrics"


def test_second_repro_changes_nothing(smoke_study):
    work, env, _ = smoke_study
    log = _run([str(BIN / "dvc"), "repro"], work, env)
    assert "Running stage" not in log, log
    status = _run([str(BIN / "dvc"), "status", "--json"], work, env)
    assert json.loads(status.strip().splitlines()[-1] or "{}") == {}


def test_rematerialise_is_identical_and_pinned(smoke_study):
    work, env, _ = smoke_study
    pin_before = (work / "data.dvc").read_text()
    shutil.rmtree(work / "data" / "raw")
    log = _run([str(BIN / "taste"), "materialise"], work, env)
    assert "verified" in log
    assert (work / "data.dvc").read_text() == pin_before
