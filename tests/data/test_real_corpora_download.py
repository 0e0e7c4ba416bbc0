import hashlib
import http.server
import io
import tarfile
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from taste.data.download import DownloadError, download_subset
from taste.data.materialise import materialise
from taste.data.prepare import prepare
from taste.data.records import read_manifest
from taste.data.synth import synthesise

SENTENCES = ["the cat sat on the mat", "a dog ran to the park", "birds sing in the morning", "she read a long book"]


@pytest.fixture(scope="module")
def clips():
    out = []
    for i, s in enumerate(SENTENCES):
        words = tuple(s.split())
        out.append((s, synthesise(words, (None,) * len(words), f"en+m{i + 1}", 170, 50, dither=3e-4).wav))
    return out


def _librispeech(root, clips):
    for spk in ("19", "26", "32"):
        chap = root / spk / "100"
        chap.mkdir(parents=True)
        lines = []
        for k, (text, wav) in enumerate(clips[:2]):
            uid = f"{spk}-100-{k:04d}"
            sf.write(chap / f"{uid}.flac", wav, 16000, format="FLAC")
            lines.append(f"{uid} {text.upper()}")
        (chap / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")


def _libritts(root, clips):
    from scipy.signal import resample_poly

    for spk in ("84", "174", "251"):
        chap = root / spk / "121"
        chap.mkdir(parents=True)
        for k, (text, wav) in enumerate(clips[:2]):
            uid = f"{spk}_121_{k:06d}_000000"
            sf.write(chap / f"{uid}.wav", resample_poly(wav, 3, 2), 24000, subtype="PCM_16")
            (chap / f"{uid}.normalized.txt").write_text(text.capitalize() + ".")
    (root / "84" / "121" / "84_121_000000_000000.normalized.txt").write_bytes(b"caf\xe9 au lait")  # not UTF-8


def _folder(root, clips):
    for spk in ("alice", "bob", "carol"):
        (root / spk).mkdir(parents=True)
        for k, (text, wav) in enumerate(clips[:2]):
            sf.write(root / spk / f"clip{k}.wav", wav, 16000, subtype="PCM_16")
            (root / spk / f"clip{k}.txt").write_text(text)


@pytest.mark.parametrize("source,build,n_load_rejected", [
    ("librispeech", _librispeech, 0), ("libritts", _libritts, 1), ("folder", _folder, 0)])
def test_real_layouts_give_the_same_manifest(tmp_path, tiny_params, clips, source, build, n_load_rejected):
    build(tmp_path / "corpus", clips)
    tiny_params["data"].update(source=source, root=str(tmp_path / "corpus"))
    tiny_params["data"]["speech"].update(n_test_speakers=1, dev_utterances=1)
    info = materialise(tiny_params, tmp_path / "raw")
    utts = read_manifest(tmp_path / "raw" / "manifest.jsonl")
    assert len(utts) == 6 - n_load_rejected and info["load_rejections"] == n_load_rejected
    assert {u.split for u in utts} == {"train", "dev", "test"}
    test_spk = {u.speaker for u in utts if u.split == "test"}
    assert len(test_spk) == 1 and test_spk.isdisjoint({u.speaker for u in utts if u.split != "test"})
    assert all(u.text in SENTENCES and not u.words for u in utts)
    metrics = prepare(tiny_params, tmp_path / "raw", tmp_path / "prepared", embed_speakers=False, progress=False)
    assert metrics["n_rejected"] == n_load_rejected
    assert metrics["n_repaired"] == (len(utts) if source == "libritts" else 0)  # 24 kHz -> 16 kHz
    kept = read_manifest(tmp_path / "prepared" / "train.jsonl")
    assert all(u.sample_rate == 16000 for u in kept)


def test_real_source_without_root_fails_clearly(tmp_path, tiny_params):
    tiny_params["data"]["source"] = "librispeech"
    with pytest.raises(FileNotFoundError, match="data.root"):
        materialise(tiny_params, tmp_path / "raw")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    requests: list = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"1 HELLO\n"
        info = tarfile.TarInfo("LibriSpeech/test-clean/1/2/1-2.trans.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server(archive):
    _RangeHandler.payload, _RangeHandler.requests = archive, []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/test-clean.tar.gz"
    httpd.shutdown()


def test_download_resumes_verifies_and_is_idempotent(tmp_path, server, archive):
    sha = hashlib.sha256(archive).hexdigest()
    (tmp_path / "librispeech").mkdir()
    (tmp_path / "librispeech" / "test-clean.tar.gz.part").write_bytes(archive[:50])  # an interrupted download
    out = download_subset("librispeech/test-clean", tmp_path, url=server, sha256=sha)
    assert _RangeHandler.requests == ["bytes=50-"]
    assert (out / "LibriSpeech/test-clean/1/2/1-2.trans.txt").read_text() == "1 HELLO\n"
    assert (out / "test-clean.tar.gz").read_bytes() == archive
    download_subset("librispeech/test-clean", tmp_path, url=server, sha256=sha)
    assert len(_RangeHandler.requests) == 1  # second call: nothing fetched


def test_download_checksum_mismatch(tmp_path, server):
    with pytest.raises(DownloadError, match="SHA-256"):
        download_subset("librispeech/test-clean", tmp_path, url=server, sha256="0" * 64)
    assert not (tmp_path / "librispeech" / "test-clean.tar.gz").exists()


def test_download_from_a_local_file(tmp_path, archive):
    src = tmp_path / "mirror" / "test-clean.tar.gz"
    src.parent.mkdir()
    src.write_bytes(archive)
    out = download_subset("libritts/test-clean", tmp_path / "dl", url=src.as_uri())
    assert (out / "LibriSpeech/test-clean/1/2/1-2.trans.txt").is_file()


def test_download_offline_stops_at_once(tmp_path):
    t0 = time.time()
    with pytest.raises(DownloadError, match="offline"):
        download_subset("librispeech/test-clean", tmp_path, url="http://127.0.0.1:9/test-clean.tar.gz", timeout=5)
    assert time.time() - t0 < 5
    with pytest.raises(ValueError, match="unknown subset"):
        download_subset("timit/train", tmp_path)
