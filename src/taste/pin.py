"""Pinning the raw corpus: `data.dvc` records the hash of data/raw that the study starts from.

A fresh clone has no DVC remote, so the corpus is regenerated bit-for-bit from its seed by `taste materialise`
and then checked against the pinned hash (a team with a remote runs `dvc pull` instead). The pin carries a
fingerprint of the parameters that shape the corpus; under other parameters (the smoke profile, a real corpus)
the regenerated corpus is re-pinned and the user is told to commit the new data.dvc.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import yaml


class CorpusMismatchError(RuntimeError):
    """The regenerated corpus does not hash to the pinned one."""


def corpus_fingerprint(params: dict[str, Any]) -> str:
    """Hash of exactly the parameters that determine the bytes of data/raw."""
    shaping = {"data": params["data"], "seed": params["shared"]["seed"], "sample_rate": params["shared"]["sample_rate"]}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    dvc = Path(sys.executable).with_name("dvc")
    return subprocess.run([str(dvc), *args], cwd=repo, capture_output=True, text=True, check=False)


def read_pin(pin_file: Path) -> dict[str, Any] | None:
    if not pin_file.exists():
        return None
    return yaml.safe_load(pin_file.read_text(encoding="utf-8"))


def _write_pin(pin_file: Path, raw_rel: str, fingerprint: str, md5: str = "0" * 32 + ".dir") -> None:
    pin = {"outs": [{"md5": md5, "hash": "md5", "path": raw_rel}], "meta": {"params_fingerprint": fingerprint}}
    pin_file.write_text(yaml.safe_dump(pin, sort_keys=False), encoding="utf-8")


def _commit_pin(repo: Path, pin_file: Path) -> str:
    """Hash data/raw into the pin (and the local DVC cache); returns the directory md5."""
    res = _dvc(repo, "commit", "-f", "-q", pin_file.name)
    if res.returncode != 0:
        raise RuntimeError(f"dvc commit {pin_file.name} failed:\n{res.stderr}")
    return read_pin(pin_file)["outs"][0]["md5"]


def is_up_to_date(repo: Path, pin_file: Path, raw_dir: Path, fingerprint: str) -> bool:
    pin = read_pin(pin_file)
    if pin is None or not raw_dir.exists() or pin.get("meta", {}).get("params_fingerprint") != fingerprint:
        return False
    res = _dvc(repo, "status", "--json", pin_file.name)
    return res.returncode == 0 and json.loads(res.stdout or "{}") == {}


def materialise_pinned(
    repo: Path, params: dict[str, Any], generate: Callable[[Path], Any], log: Callable[[str], None] = print
) -> str:
    """Make data/raw exist and agree with data.dvc; returns "up-to-date", "verified" or "re-pinned"."""
    repo = Path(repo)
    raw_rel = params["shared"]["paths"]["raw"]
    raw_dir, pin_file = repo / raw_rel, repo / "data.dvc"
    fingerprint = corpus_fingerprint(params)
    if is_up_to_date(repo, pin_file, raw_dir, fingerprint):
        log(f"{raw_rel} is up to date with data.dvc (fingerprint {fingerprint})")
        return "up-to-date"
    # Generated in place (manifests name their audio by this path); a half-written corpus from an interrupted
    # run fails the status check above and is regenerated from scratch.
    shutil.rmtree(raw_dir, ignore_errors=True)
    generate(raw_dir)
    pin = read_pin(pin_file)
    if pin is not None and pin.get("meta", {}).get("params_fingerprint") == fingerprint:
        pinned_md5 = pin["outs"][0]["md5"]
        backup = pin_file.read_text(encoding="utf-8")
        md5 = _commit_pin(repo, pin_file)
        if md5 != pinned_md5:
            pin_file.write_text(backup, encoding="utf-8")
            raise CorpusMismatchError(
                f"{raw_rel} regenerated from seed hashes to {md5}, but data.dvc pins {pinned_md5}: the corpus is not "
                "the published one (different library versions?). Inspect with `dvc diff`, or re-pin deliberately "
                "with `taste materialise --repin`.")
        log(f"{raw_rel} regenerated and verified against data.dvc ({md5})")
        return "verified"
    _write_pin(pin_file, raw_rel, fingerprint)
    md5 = _commit_pin(repo, pin_file)
    log(f"{raw_rel} generated for params fingerprint {fingerprint} and pinned in data.dvc ({md5}); "
        "commit data.dvc to publish it")
    return "re-pinned"
