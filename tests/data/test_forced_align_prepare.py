"""Word and phone timings from a forced aligner, never invented (issue 15, section 1).

A corpus without timings (as the real corpora load) is spoken by the project's synthesiser, which knows the true word
and phone times; prepare must time it by forced alignment of the known transcript, close to the truth, mark the source,
reject what it cannot align, and leave records that come with timings (the synthetic corpus) exactly as they were.
"""
import json

import numpy as np
import pytest

from taste.data import prepare as prepare_mod
from taste.data.audio_io import write_audio
from taste.data.forced_align import AlignmentError, Pocketsphinx
from taste.data.prepare import prepare
from taste.data.records import Utterance, read_manifest, utterance_to_json, write_manifest
from taste.data.synth import synthesise

SR = 16000
SENTENCES = ["the cat sat on the mat", "a dog ran to the park", "birds sing in the morning",
             "my brother walked slowly to the old market"]
# Mean |aligned - true| over word starts and ends. Measured 0.022 s over these sentences at 120-230 wpm (p95 0.052 s,
# max 0.099 s; the aligner works in 10 ms frames and espeak's word event is not where the acoustics change):
# 0.045 s leaves room for the voices and rates here and still fails an aligner that is off by a phone.
MEAN_BOUNDARY_ERROR_S = 0.045
ARPABET = {"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
           "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z",
           "ZH"}


@pytest.fixture(scope="module")
def clips():
    """(text, Synthesised with the true timings) per sentence, each a different voice and rate."""
    out = []
    for i, text in enumerate(SENTENCES):
        words = tuple(text.split())
        out.append((text, synthesise(words, (None,) * len(words), f"en+m{i + 1}", 150 + 15 * i, 50, dither=3e-4)))
    return out


def _utt(uid, path, wav, text, **kw):
    return Utterance(id=uid, audio_path=str(path), duration=round(len(wav) / SR, 5), sample_rate=SR, text=text,
                     speaker=kw.pop("speaker", "s1"), split="train", rate_wpm=None, pitch=None, **kw)


def _raw(tmp_path, items):
    """items: (id, wav, text, words, phones) -> raw dir with audio and a manifest."""
    raw = tmp_path / "raw"
    utts = []
    for uid, wav, text, words, phones in items:
        path = raw / "audio" / f"{uid}.wav"
        write_audio(path, wav, SR)
        utts.append(_utt(uid, path, wav, text, words=words, phones=phones))
    write_manifest(raw / "manifest.jsonl", utts)
    return raw, utts


def _within(phone, words):
    return any(w.start - 1e-6 <= phone.start and phone.end <= w.end + 1e-6 for w in words)


def test_prepare_aligns_untimed_utterances_and_keeps_timed_ones(tmp_path, tiny_params, clips, monkeypatch):
    timed_text, timed = clips[0]
    items = [("timed", timed.wav, timed_text, timed.words, timed.phones)]  # as the synthetic corpus: exact timings
    items += [(f"plain{i}", s.wav, text, (), ()) for i, (text, s) in enumerate(clips[1:], 1)]  # timings thrown away
    raw, utts = _raw(tmp_path, items)
    aligned_ids = []
    real_call = prepare_mod.ForcedTimer.__call__

    def spy(self, utt, wav, sample_rate):
        aligned_ids.append(utt.id)
        return real_call(self, utt, wav, sample_rate)

    monkeypatch.setattr(prepare_mod.ForcedTimer, "__call__", spy)
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False,
                      aligner_cache=tmp_path / "ps")

    assert aligned_ids == [f"plain{i}" for i in range(1, len(clips))]  # the timed record is never re-aligned
    lines = (tmp_path / "prepared" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == utterance_to_json(utts[0]) and "timing_source" not in lines[0]  # byte-identical
    kept = read_manifest(tmp_path / "prepared" / "train.jsonl")
    assert [u.id for u in kept] == [u.id for u in utts]
    assert kept[0].timing_source == "corpus"
    errors = []
    for u, (text, truth) in zip(kept[1:], clips[1:]):
        assert u.timing_source == "forced_alignment" and '"timing_source": "forced_alignment"' in utterance_to_json(u)
        assert [w.word for w in u.words] == text.split()
        errors += [x for a, b in zip(u.words, truth.words) for x in (a.start - b.start, a.end - b.end)]
        assert u.phones and {p.phone for p in u.phones} <= ARPABET
        assert all(_within(p, u.words) for p in u.phones)  # every phone inside a word
        assert all(p.duration > 0 for p in u.phones) and u.words[-1].end <= u.duration + 0.01
        # phones in time order, and about as many as the synthesiser spoke (espeak and cmudict spell words apart)
        assert all(a.start <= b.start for a, b in zip(u.phones, u.phones[1:]))
        assert abs(len(u.phones) - len(truth.phones)) <= 0.3 * len(truth.phones)
    mean_error = float(np.mean(np.abs(errors)))
    assert mean_error < MEAN_BOUNDARY_ERROR_S, f"mean word-boundary error {mean_error:.3f} s"
    assert metrics["timing_source"]["train"] == {"corpus": 1, "forced_alignment": len(clips) - 1}
    assert metrics["timing_source"]["dev"] == {"corpus": 0, "forced_alignment": 0}
    assert metrics["n_rejected"] == 0 and metrics["n_alignment_failed"] == 0
    summary = json.loads((tmp_path / "prepared" / "prepare_summary.json").read_text())
    assert summary["timing_source"]["train"]["forced_alignment"] == len(clips) - 1
    # the units stage reads its phone vocabulary from phones.json: every aligned phone has a CTC target
    from taste.units.phones import load_phone_vocab

    vocab = load_phone_vocab(tmp_path / "prepared" / "phones.json")
    for u in kept[1:]:
        assert len(vocab.ctc_targets(u.phones)) == len(u.phones)


def test_transcript_that_cannot_fit_the_audio_is_rejected_by_name(tmp_path, tiny_params, clips):
    text, good = clips[1]
    short = good.wav[: SR // 2]  # 0.5 s of speech
    nonsense = " ".join(["elephant", "umbrella", "tomorrow", "yesterday"] * 5)  # 20 words
    raw, _ = _raw(tmp_path, [("good", good.wav, text, (), ()), ("mismatch", short, nonsense, (), ())])
    tiny_params["prepare"]["chars_per_second"] = [0.5, 1000.0]  # let it past the length check: the aligner judges
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False,
                      aligner_cache=tmp_path / "ps")
    report = json.loads((tmp_path / "prepared" / "rejections.json").read_text())
    assert [r["id"] for r in report["rejections"]] == ["mismatch"]
    rejection = report["rejections"][0]
    assert rejection["problem"].startswith("forced alignment failed") and "mismatch.wav" in rejection["file"]
    assert metrics["n_rejected"] == 1 and metrics["n_alignment_failed"] == 1 and metrics["n_input"] == 2
    assert [u.id for u in read_manifest(tmp_path / "prepared" / "train.jsonl")] == ["good"]


def test_synthetic_corpus_is_never_aligned(tiny_corpus, tiny_params, tmp_path, monkeypatch):
    """The materialised synthetic corpus keeps its own timings: prepare never builds an aligner for it."""
    raw, _ = tiny_corpus

    def refuse(*args, **kwargs):
        raise AssertionError("the synthetic corpus was sent to the forced aligner")

    monkeypatch.setattr(prepare_mod.ForcedTimer, "__call__", refuse)
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False)
    for split in ("train", "dev", "test", "swap_global", "swap_local"):
        assert metrics["timing_source"][split]["forced_alignment"] == 0
        assert metrics["timing_source"][split]["corpus"] == metrics["utterances"][split]
        text = (tmp_path / "prepared" / f"{split}.jsonl").read_text(encoding="utf-8")
        assert "timing_source" not in text


def test_align_phones_words_equal_align_and_phones_nest(tmp_path, clips):
    """align_phones gives align's words, and both phone passes (the sub-word pass, and the pseudo-word pass used where
    it finds no path) nest the phones in those words."""
    ps = Pocketsphinx([t for t, _ in clips], cache_root=tmp_path)
    n_fallback = 0
    for text, s in clips:
        words, phones = ps.align_phones(s.wav, text)
        again = ps.align(s.wav, text)  # the decoder's live CMN carries over between calls: equal to a frame or two
        assert [w.word for w in words] == [w.word for w in again]
        assert max(abs(a.start - b.start) + abs(a.end - b.end) for a, b in zip(words, again)) <= 0.025
        assert phones and all(_within(p, words) for p in phones)
        prons = [ps._decoder(lm=False).lookup_word(w).split() for w in text.split()]
        try:
            fallback = ps._phone_pass(s.wav, words, prons)
        except AlignmentError as e:  # the last resort may fail too: then prepare rejects the utterance
            assert "phone alignment failed" in str(e)
            continue
        n_fallback += 1
        assert [p.phone for p in fallback] == [p for pron in prons for p in pron]
        assert all(_within(p, words) for p in fallback)
    assert n_fallback >= 2
    with pytest.raises(AlignmentError, match="forced alignment failed"):
        ps.align_phones(np.zeros(800, np.float32), SENTENCES[3])
