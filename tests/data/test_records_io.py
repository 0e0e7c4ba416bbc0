import numpy as np
import pytest
import torch

from taste.data.audio_io import AudioReadError, SampleRateError, read_audio, write_audio
from taste.data.features import MelConfig, log_mel, n_frames
from taste.data.loaders import FeatureStore, save_tensor_map
from taste.data.records import (ManifestError, PairInfo, PhoneAlignment, Utterance, WordAlignment, read_manifest,
                                write_manifest)
from taste.data.text_norm import normalise


def _utt(**kw):
    base = dict(id="u1", audio_path="data/raw/audio/u1.wav", duration=1.0, sample_rate=16000, text="hello there",
                speaker="m1_p40", split="train", rate_wpm=150.0, pitch=50.0,
                words=(WordAlignment("hello", 0.1, 0.3), WordAlignment("there", 0.4, 0.3, "rate=60%")),
                phones=(PhoneAlignment("h", 0.1, 0.05),), story_id="train000001",
                pair=PairInfo("local", "swl0001", "base", 1))
    base.update(kw)
    return Utterance(**base)


def test_manifest_round_trip(tmp_path):
    utts = [_utt(), _utt(id="u2", words=(), phones=(), pair=None, rate_wpm=None, pitch=None)]
    write_manifest(tmp_path / "m.jsonl", utts)
    assert read_manifest(tmp_path / "m.jsonl") == utts
    first = (tmp_path / "m.jsonl").read_bytes()
    write_manifest(tmp_path / "m.jsonl", read_manifest(tmp_path / "m.jsonl"))
    assert (tmp_path / "m.jsonl").read_bytes() == first


def test_records_are_immutable_and_checked():
    w = WordAlignment("a", 1.0, 0.5)
    with pytest.raises(Exception):
        w.start = 2.0  # frozen
    assert w.shifted(1.0) == WordAlignment("a", 2.0, 0.5) and w.end == 1.5
    assert w.scaled(2.0).duration == 1.0
    with pytest.raises(ValueError, match="word alignments"):
        _utt(text="only one word here")


def test_bad_manifest_line_names_file_and_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m.jsonl:1"):
        read_manifest(p)
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("raw,expected", [
    ("Hello, World!", "hello world"), ("  don't   STOP ", "don't stop"), ("'quoted' text", "quoted text"),
    ("Café-au-lait", "cafe au lait"), ("...", ""), ("a\tb\nc", "a b c"),
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected
    assert normalise(normalise(raw)) == normalise(raw)  # idempotent


def test_log_mel_shapes_and_frame_rate():
    cfg = MelConfig()
    wav = torch.randn(2, 16000) * 0.1
    mel = log_mel(wav, cfg)
    assert mel.shape == (2, 80, 100) == (2, cfg.n_mels, n_frames(16000, cfg))
    assert torch.allclose(log_mel(wav[0], cfg), mel[0], atol=1e-5)
    assert mel.min() >= np.log(1e-5) - 1e-4
    silent = log_mel(torch.zeros(1600), cfg)
    assert torch.allclose(silent, torch.full_like(silent, np.log(1e-5)))
    with pytest.raises(ValueError):
        log_mel(torch.zeros(10), cfg)


def test_audio_round_trip_and_errors(tmp_path):
    wav = (np.sin(np.arange(16000) / 10) * 0.5).astype(np.float32)
    write_audio(tmp_path / "a.wav", wav, 16000)
    back = read_audio(tmp_path / "a.wav", 16000)
    assert back.dtype == np.float32 and np.abs(back - wav).max() < 1e-4
    with pytest.raises(SampleRateError, match="a.wav"):
        read_audio(tmp_path / "a.wav", 22050)
    with pytest.raises(FileNotFoundError):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioReadError, match="bad.wav"):
        read_audio(tmp_path / "bad.wav")


def test_feature_store_round_trip(tmp_path):
    feats = {"b": torch.randn(80, 7), "a": torch.randn(80, 3)}
    save_tensor_map(tmp_path / "f.safetensors", feats, torch.float16)
    store = FeatureStore(tmp_path / "f.safetensors")
    assert set(store.keys()) == {"a", "b"} and len(store) == 2 and "a" in store
    assert torch.allclose(store.get("b"), feats["b"].half().float())
    import pickle
    assert torch.equal(pickle.loads(pickle.dumps(store)).get("a"), store.get("a"))
    with pytest.raises(KeyError, match="zzz"):
        store.get("zzz")
    with pytest.raises(FileNotFoundError):
        FeatureStore(tmp_path / "none.safetensors")
