import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taste.pin import CorpusMismatchError, corpus_fingerprint, materialise_pinned, read_pin

PARAMS = {"shared": {"seed": 1, "sample_rate": 16000, "paths": {"raw": "data/raw"}}, "data": {"n": 3}}


def test_fingerprint_depends_only_on_corpus_shaping_params():
    other_stage = {**PARAMS, "units": {"steps": 5}}
    assert corpus_fingerprint(PARAMS) == corpus_fingerprint(other_stage)
    assert corpus_fingerprint(PARAMS) != corpus_fingerprint({**PARAMS, "data": {"n": 4}})


@pytest.fixture()
def repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def _generator(content: str):
    def generate(out: Path):
        out.mkdir(parents=True)
        (out / "a.txt").write_text(content)
    return generate


def test_pin_then_verify_then_detect_a_different_corpus(repo):
    logs = []
    assert materialise_pinned(repo, PARAMS, _generator("x"), logs.append) == "re-pinned"
    pin = read_pin(repo / "data.dvc")
    assert pin["meta"]["params_fingerprint"] == corpus_fingerprint(PARAMS)
    assert materialise_pinned(repo, PARAMS, _generator("x"), logs.append) == "up-to-date"
    shutil.rmtree(repo / "data" / "raw")
    assert materialise_pinned(repo, PARAMS, _generator("x"), logs.append) == "verified"
    shutil.rmtree(repo / "data" / "raw")
    with pytest.raises(CorpusMismatchError, match="pins"):
        materialise_pinned(repo, PARAMS, _generator("y"), logs.append)
    assert read_pin(repo / "data.dvc") == pin  # the published pin is not overwritten


def test_other_params_repin(repo):
    materialise_pinned(repo, PARAMS, _generator("x"), print)
    other = {**PARAMS, "data": {"n": 99}}
    assert materialise_pinned(repo, other, _generator("z"), print) == "re-pinned"
    assert read_pin(repo / "data.dvc")["meta"]["params_fingerprint"] == corpus_fingerprint(other)
