import json

import numpy as np
import pytest
import soundfile as sf
import torch

from taste.data.audio_io import write_audio
from taste.data.loaders import FeatureStore
from taste.data.prepare import prepare
from taste.data.records import Utterance, WordAlignment, read_manifest, write_manifest
from taste.data.validate import (AudioValidationError, TooManyRejectionsError, TranscriptValidationError,
                                 ValidationConfig, read_manifest_lenient, validate_utterance)

CFG = ValidationConfig()
SR = 16000


def _wav(seconds=1.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _utt(path, text="a short test sentence", duration=1.0, **kw):
    return Utterance(id=kw.pop("id", "u1"), audio_path=str(path), duration=duration, sample_rate=SR, text=text,
                     speaker="s", split="train", rate_wpm=None, pitch=None, **kw)


def _bad_file(kind, d):
    p = d / f"{kind}.wav"
    if kind == "corrupt":
        p.write_bytes(b"\x00\x01garbage" * 50)
    elif kind == "zero_length":
        p.write_bytes(b"")
    elif kind == "no_samples":
        sf.write(p, np.zeros(0, np.float32), SR, subtype="PCM_16")
    elif kind == "truncated":
        write_audio(p, _wav(), SR)
        p.write_bytes(p.read_bytes()[:-8000])
    elif kind == "nan":
        w = _wav()
        w[100] = np.nan
        sf.write(p, w, SR, subtype="FLOAT")
    elif kind == "clipped":
        write_audio(p, np.clip(_wav(amp=3.0), -1, 1), SR)
    elif kind == "silent":
        write_audio(p, np.zeros(SR, np.float32), SR)
    elif kind == "near_silent":  # noise at the 16-bit dither level
        sf.write(p, np.random.default_rng(0).normal(0, 3e-5, SR).astype(np.float32), SR, subtype="FLOAT")
    return p


@pytest.mark.parametrize("kind,message", [
    ("corrupt", "unreadable or corrupt"), ("zero_length", "zero-length file"), ("no_samples", "zero-length audio"),
    ("truncated", "truncated WAV"), ("nan", "NaN"), ("clipped", "clipped"), ("silent", "silence"),
    ("near_silent", "silence"),
])
def test_bad_audio_is_rejected_with_file_and_problem(tmp_path, kind, message):
    path = _bad_file(kind, tmp_path)
    with pytest.raises(AudioValidationError, match=message) as err:
        validate_utterance(_utt(path), path, CFG)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        validate_utterance(_utt(tmp_path / "gone.wav"), tmp_path / "gone.wav", CFG)


def test_truncated_audio_caught_by_manifest_duration(tmp_path):
    p = tmp_path / "short.flac"
    sf.write(p, _wav(0.5), SR, format="FLAC")
    with pytest.raises(AudioValidationError, match="manifest says"):
        validate_utterance(_utt(p, duration=1.0), p, CFG)


@pytest.mark.parametrize("text,message", [
    ("", "empty transcript"), ("   ", "empty transcript"),
    ("word " * 60, "implausible transcript length"), ("a", "implausible transcript length"),
])
def test_bad_transcripts(tmp_path, text, message):
    p = tmp_path / "ok.wav"
    write_audio(p, _wav(1.0), SR)
    with pytest.raises(TranscriptValidationError, match=message):
        validate_utterance(_utt(p, text=text), p, CFG)


def test_alignment_past_the_audio_is_rejected(tmp_path):
    p = tmp_path / "ok.wav"
    write_audio(p, _wav(1.0), SR)
    words = tuple(WordAlignment(w, 0.5 * i, 0.4) for i, w in enumerate("one two three".split()))
    with pytest.raises(TranscriptValidationError, match="after the audio"):
        validate_utterance(_utt(p, text="one two three", words=words), p, CFG)


@pytest.mark.parametrize("kind", ["stereo", "rate"])
def test_stereo_and_wrong_rate_are_repaired(tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    if kind == "stereo":
        sf.write(p, np.stack([_wav(), _wav()], 1), SR, subtype="PCM_16")
    else:
        sf.write(p, np.resize(_wav(), 22050), 22050, subtype="PCM_16")
    wav, utt, repairs = validate_utterance(_utt(p), p, CFG)
    assert wav.ndim == 1 and abs(len(wav) - SR) <= 1 and utt.sample_rate == SR
    assert repairs == (["downmixed 2 channels to mono"] if kind == "stereo" else ["resampled from 22050 Hz to 16000 Hz"])


def test_invalid_utf8_line_is_a_rejection(tmp_path):
    good = _utt(tmp_path / "a.wav")
    write_manifest(tmp_path / "m.jsonl", [good])
    bad = b'{"id": "u2", "audio_path": "b.wav", "text": "caf\xe9"}\n'
    with (tmp_path / "m.jsonl").open("ab") as f:
        f.write(bad)
    utts, rejections = read_manifest_lenient(tmp_path / "m.jsonl")
    assert utts == [good]
    assert rejections[0].id == "u2" and rejections[0].file == "b.wav" and "UTF-8" in rejections[0].problem


def _corpus_with_bad_items(raw, tmp_path):
    """The tiny corpus' manifest plus one missing file, one empty transcript and one all-silent file."""
    utts = read_manifest(raw / "manifest.jsonl")
    out = tmp_path / "raw"
    out.mkdir()
    write_audio(out / "silent.wav", np.zeros(SR, np.float32), SR)
    extra = [_utt(tmp_path / "missing.wav", id="bad_missing"), _utt(raw / "audio" / f"{utts[0].id}.wav", text="",
                                                                     id="bad_empty", duration=utts[0].duration),
             _utt(out / "silent.wav", id="bad_silent")]
    write_manifest(out / "manifest.jsonl", utts + extra)
    return out, utts


def test_prepare_writes_outputs_and_report(tiny_corpus, tiny_params, tmp_path):
    raw, _ = tiny_corpus
    raw2, utts = _corpus_with_bad_items(raw, tmp_path)
    metrics = prepare(tiny_params, raw2, tmp_path / "prepared", progress=False)
    report = json.loads((tmp_path / "prepared" / "rejections.json").read_text())
    assert {r["id"] for r in report["rejections"]} == {"bad_missing", "bad_empty", "bad_silent"}
    assert "silence" in next(r["problem"] for r in report["rejections"] if r["id"] == "bad_silent")
    assert metrics["n_rejected"] == 3 and metrics["n_input"] == len(utts) + 3
    for split in ("train", "dev", "test", "swap_global", "swap_local"):
        kept = read_manifest(tmp_path / "prepared" / f"{split}.jsonl")
        assert kept == [u for u in utts if u.split == split]
        store = FeatureStore(tmp_path / "prepared" / "features" / f"{split}.safetensors")
        for u in kept:
            mel = store.get(u.id)
            assert mel.shape[0] == 80 and abs(mel.shape[1] - u.duration * 100) <= 1
        pitch = FeatureStore(tmp_path / "prepared" / "pitch" / f"{split}.safetensors")
        assert set(pitch.keys()) == {u.id for u in kept}
        for u in kept:
            f0 = pitch.get(u.id)
            assert f0.shape == (store.get(u.id).shape[1],) and torch.all(f0 >= 0)
    spk = FeatureStore(tmp_path / "prepared" / "speaker_embeddings.safetensors")
    assert len(spk) == len(utts) and spk.get(utts[0].id).shape == (256,)
    assert np.isclose(float(spk.get(utts[0].id).norm()), 1.0, atol=1e-4)
    assert 0.1 < metrics["voiced_share"] < 0.95
    phones = json.loads((tmp_path / "prepared" / "phones.json").read_text())["phones"]
    assert phones == sorted({p.phone for u in utts for p in u.phones})


def test_prepare_fails_loudly_above_threshold(tiny_corpus, tiny_params, tmp_path):
    raw, _ = tiny_corpus
    raw2, utts = _corpus_with_bad_items(raw, tmp_path)
    tiny_params["prepare"]["max_rejection_share"] = 1 / (len(utts) + 3)  # one rejection allowed, three happen
    with pytest.raises(TooManyRejectionsError, match="bad_missing"):
        prepare(tiny_params, raw2, tmp_path / "prepared", embed_speakers=False, progress=False)
    assert json.loads((tmp_path / "prepared" / "rejections.json").read_text())["n_rejected"] == 3


def test_no_synthetic_utterance_is_near_the_silence_floor(tiny_corpus):
    """The silence check must not touch the synthetic corpus: every utterance is far above both bounds (the full
    corpus' quietest file peaks at -9.7 dBFS, RMS -27 dBFS)."""
    from taste.data.validate import load_checked

    raw, _ = tiny_corpus
    for u in read_manifest(raw / "manifest.jsonl"):
        wav, _ = load_checked(raw / u.audio_path, CFG)
        assert np.abs(wav).max() > 100 * CFG.silence_peak and np.sqrt(np.mean(wav ** 2)) > 100 * CFG.silence_rms


def test_batched_speaker_embeddings_match_the_reference():
    """The one embedder equals resemblyzer's own embed_utterance (librosa mel, one utterance at a time) at its
    default partial rate, batched or one by one, and the judge (metrics.speaker) is that same computation."""
    from resemblyzer import VoiceEncoder, preprocess_wav

    from taste.data.speaker_embed import BatchSpeakerEncoder
    from taste.metrics.speaker import SpeakerEncoder

    rng = np.random.default_rng(0)
    wavs = [_wav(1.3) + 0.01 * rng.standard_normal(int(1.3 * SR)).astype(np.float32), _wav(2.5, 0.1)]
    reference = VoiceEncoder("cpu", verbose=False)

    def reference_embed(w):  # resemblyzer's own path; audio its VAD trims to nothing is embedded raw, as ours does
        prepared = preprocess_wav(w, source_sr=SR)
        return reference.embed_utterance(prepared if prepared.size >= SR // 10 else w)

    ref = np.stack([reference_embed(w) for w in wavs])
    encoder = BatchSpeakerEncoder()
    assert np.allclose(encoder.embed_batch(wavs), ref, atol=1e-5)
    assert np.allclose(np.stack([encoder.embed(w) for w in wavs]), ref, atol=1e-5)
    assert np.allclose(np.stack([SpeakerEncoder().embed(w) for w in wavs]), ref, atol=1e-5)


def test_conditioning_embedder_follows_prepare_settings():
    """prepare, the stages and the CLI embed speakers with conditioning_encoder(params): prepare's partial rate."""
    from taste.data.speaker_embed import BatchSpeakerEncoder, conditioning_encoder

    wav = _wav(4.0) + 0.01 * np.random.default_rng(1).standard_normal(4 * SR).astype(np.float32)
    for rate in (1.0, 2.0):
        encoder = conditioning_encoder({"prepare": {"speaker_partials_per_second": rate}})
        assert encoder.rate == rate
        assert np.array_equal(encoder.embed(wav), BatchSpeakerEncoder("cpu", rate).embed_batch([wav])[0])
    # a 4 s utterance: more partials at a higher rate, so the two rates give different embeddings
    low, high = (conditioning_encoder({"prepare": {"speaker_partials_per_second": r}}).embed(wav) for r in (0.7, 2.0))
    assert not np.allclose(low, high, atol=1e-6)
