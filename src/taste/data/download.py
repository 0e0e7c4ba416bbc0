"""`taste download`: fetch and unpack a LibriSpeech / LibriTTS subset, apart from preparation and idempotent.

Resumes a partial download (HTTP Range), verifies a SHA-256 when one is given, unpacks safely and leaves a marker,
so a second call returns at once. Offline it fails at the first connection attempt with a message saying what to do.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

OPENSLR = {"librispeech": "https://www.openslr.org/resources/12/{subset}.tar.gz",
           "libritts": "https://www.openslr.org/resources/60/{subset}.tar.gz"}
MARKER = ".download_complete"


class DownloadError(RuntimeError):
    """The corpus could not be fetched (offline, unreachable, checksum mismatch, bad archive)."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, target: Path, *, timeout: float = 10.0) -> Path:
    """Download url to target, resuming from target.part; returns target."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # asked past the end: the partial file is already complete
            part.replace(target)
            return target
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(
            f"cannot reach {url} ({getattr(e, 'reason', e)}). This machine looks offline: download the archive "
            f"elsewhere, put it at {target} (or unpack it and set data.root), then rerun.") from e
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        with part.open("ab" if resumed else "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    part.replace(target)
    return target


def _extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths, links out of dest, devices
    except (tarfile.TarError, OSError) as e:
        raise DownloadError(f"{archive}: cannot unpack ({e})") from e


def download_subset(name: str, dest: str | Path, url: str | None = None, *, sha256: str | None = None,
                    timeout: float = 10.0) -> Path:
    """Fetch corpus subset `name` ("librispeech/test-clean", "libritts/dev-clean") into dest -> unpacked folder.

    Idempotent: returns at once when dest holds a completed download of the same archive.
    """
    corpus, _, subset = name.partition("/")
    if corpus not in OPENSLR or not subset:
        raise ValueError(f"unknown subset {name!r}: expected librispeech/<subset> or libritts/<subset>")
    url = url or OPENSLR[corpus].format(subset=subset)
    dest = Path(dest) / corpus
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / f"{subset}{MARKER}"
    if marker.is_file():
        return dest
    archive = dest / url.rstrip("/").split("/")[-1]
    if not archive.is_file():
        fetch(url, archive, timeout=timeout)
    if sha256 is not None:
        got = sha256_of(archive)
        if got != sha256.lower():
            archive.unlink()
            raise DownloadError(f"{archive}: SHA-256 {got} does not match the expected {sha256}; removed it, rerun")
    _extract(archive, dest)
    marker.write_text((sha256 or sha256_of(archive)) + "\n", encoding="utf-8")
    return dest
