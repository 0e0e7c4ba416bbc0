"""Word and phone timings from a forced aligner, never invented (issue 15, section 1).

A corpus without timings (as the real corpora load) is spoken by the project's synthesiser, which knows the true word
and phone times; prepare must time it by forced alignment of the known transcript, close to the truth, mark the source,
reject what it cannot align, and leave records that come with timings (the synthetic corpus) exactly as they were.
"""
import json

import numpy as np
import pytest

from taste.data import forced_align
from taste.data import prepare as prepare_mod
from taste.data.audio_io import resample, write_audio
from taste.data.forced_align import AlignmentError, ForcedAligner
from taste.data.prepare import prepare
from taste.data.records import Utterance, read_manifest, utterance_to_json, write_manifest
from taste.data.synth import synthesise

SR = 16000
SENTENCES = ["the cat sat on the mat", "a dog ran to the park", "birds sing in the morning",
             "my brother walked slowly to the old market"]
# Mean |aligned - true| over word starts and ends. Measured 0.022 s over these sentences at 120-230 wpm (p95 0.052 s,
# max 0.099 s; the aligner works in 10 ms frames and espeak's word event is not where the acoustics change); 0.0196 s
# on the three clips of the prepare test below (0.0204 s before each utterance got a fresh front end):
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


def _raw(tmp_path, items, file_sr=SR):
    """items: (id, wav, text, words, phones) -> raw dir with audio (written at `file_sr`) and a manifest."""
    raw = tmp_path / "raw"
    utts = []
    for uid, wav, text, words, phones in items:
        path = raw / "audio" / f"{uid}.wav"
        write_audio(path, resample(wav, SR, file_sr), file_sr)
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
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False)

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
    print(f"mean word-boundary error of the forced aligner: {mean_error:.4f} s over {len(errors)} boundaries")
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
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False)
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


def test_align_phones_words_equal_align_and_phones_nest(clips):
    """align_phones gives align's words, and both phone passes (the sub-word pass, and the pseudo-word pass used where
    it finds no path) nest the phones in those words."""
    ps = ForcedAligner([t for t, _ in clips])
    n_fallback = 0
    for text, s in clips:
        words, phones = ps.align_phones(s.wav, text)
        assert ps.align(s.wav, text) == words  # no state carried over from the phone passes just run
        assert phones and all(_within(p, words) for p in phones)
        prons = [ps._decoder().lookup_word(w).split() for w in text.split()]
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


def test_alignment_does_not_depend_on_earlier_utterances(clips):
    """Utterance X aligned alone and after a different utterance Y gets identical word and phone timings (the
    decoder's front end, live CMN among it, used to carry over and move boundaries by a frame or two)."""
    (text_y, y), (text_x, x) = clips[0], clips[3]
    alone = ForcedAligner([text_x, text_y]).align_phones(x.wav, text_x)
    after = ForcedAligner([text_x, text_y])
    after.align_phones(y.wav, text_y)
    after.align(clips[1][1].wav, clips[1][0])
    assert after.align_phones(x.wav, text_x) == alone
    assert after.align(x.wav, text_x) == alone[0]


def test_aligner_builds_no_language_model_and_no_cache(tmp_path, clips, monkeypatch):
    """The prepare stage's aligner needs only a dictionary: it never builds an LM and leaves nothing on disk."""
    import tempfile

    import pocketsphinx.lm

    def no_lm(*args, **kwargs):
        raise AssertionError("the forced aligner built a language model")

    monkeypatch.setattr(pocketsphinx.lm, "ArpaBoLM", no_lm)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    text, s = clips[1]
    aligner = ForcedAligner([text])
    words, phones = aligner.align_phones(s.wav, text)
    assert [w.word for w in words] == text.split() and phones
    assert not hasattr(aligner, "lm_path")
    with pytest.raises(TypeError, match="no language model"):
        aligner._decoder(lm=True)
    assert list(tmp_path.iterdir()) == []  # the dictionary file lived only while the decoder read it


def test_recogniser_cache_is_keyed_by_the_code_that_builds_it(tmp_path, monkeypatch):
    """The recogniser's cached LM and dictionary are reused for the same sentences and code, never across a change
    of the code, lexicon or RESOURCE_VERSION that builds them."""
    sentences = SENTENCES[:2]
    first = forced_align.build_resources(sentences, tmp_path)
    assert forced_align.build_resources(list(reversed(sentences)), tmp_path)[0] == first[0]  # same key, reused
    fingerprint = forced_align.resource_fingerprint()
    monkeypatch.setattr(forced_align, "RESOURCE_VERSION", forced_align.RESOURCE_VERSION + 1)
    assert forced_align.resource_fingerprint() != fingerprint
    bumped = forced_align.build_resources(sentences, tmp_path)
    assert bumped[0] != first[0] and bumped[0].is_file() and bumped[1].is_file()
    monkeypatch.setattr(forced_align, "resource_fingerprint", lambda: "other-source")
    assert forced_align.build_resources(sentences, tmp_path)[0] not in (first[0], bumped[0])
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("sample_rate", [22050, 48000])
def test_aligner_accepts_any_sample_rate(clips, sample_rate):
    """The aligner resamples through audio_io.resample (the one resampler of taste.data) and times in seconds."""
    text, s = clips[2]
    aligner = ForcedAligner([text])
    ref_words, ref_phones = aligner.align_phones(s.wav, text)
    words, phones = aligner.align_phones(resample(s.wav, SR, sample_rate), text, sample_rate)
    assert [w.word for w in words] == text.split() and phones
    assert max(abs(a.start - b.start) + abs(a.end - b.end) for a, b in zip(words, ref_words)) <= 0.03
    assert aligner.align(resample(s.wav, SR, sample_rate), text, sample_rate) == words


def test_one_resampler_in_data():
    """validate, the synthesiser and the aligner resample with audio_io.resample; no other copy in taste.data."""
    from pathlib import Path

    import taste.data
    from taste.data import audio_io

    x = np.random.default_rng(0).normal(0, 0.1, 2205).astype(np.float32)
    y = audio_io.resample(x, 22050, 16000)
    assert y.dtype == np.float32 and len(y) == 1600
    assert audio_io.resample(x, 16000, 16000) is x  # same rate: unchanged
    holders = [p.name for p in Path(taste.data.__file__).parent.glob("*.py") if "resample_poly" in p.read_text()]
    assert holders == ["audio_io.py"]


def test_phone_pass_that_loses_a_phone_is_rejected(clips, monkeypatch):
    """A pass (first try, retry or fallback) that leaves a word short of its pronunciation's phones is never
    accepted: align_phones raises AlignmentError naming the word when every pass loses it."""
    text, s = clips[1]  # "a dog ran to the park"
    aligner = ForcedAligner([text])
    good_words, good_phones = aligner.align_phones(s.wav, text)
    real_clipped = forced_align._clipped

    def drop_last_phone_of_dog(phone, start, end, word):
        return [] if word.word == "dog" and phone == "G" else real_clipped(phone, start, end, word)

    monkeypatch.setattr(forced_align, "_clipped", drop_last_phone_of_dog)
    with pytest.raises(AlignmentError, match=r"phone alignment failed: word 'dog' got phones D AO, its pronunciation "
                                             r"is D AO G"):
        aligner.align_phones(s.wav, text)
    monkeypatch.setattr(forced_align, "_clipped", real_clipped)
    assert aligner.align_phones(s.wav, text) == (good_words, good_phones)


def test_checked_phones_need_every_phone_of_every_word():
    from taste.data.records import PhoneAlignment, WordAlignment

    words = [WordAlignment("a", 0.0, 0.1), WordAlignment("dog", 0.1, 0.3)]
    groups = [[PhoneAlignment("AH", 0.0, 0.1)], [PhoneAlignment("D", 0.1, 0.1), PhoneAlignment("AO", 0.2, 0.2)]]
    with pytest.raises(AlignmentError, match="'dog' got phones D AO"):
        forced_align._checked(groups, words, [["AH"], ["D", "AO", "G"]])
    with pytest.raises(AlignmentError, match="'a' got phones none"):
        forced_align._checked([[], groups[1]], words, [["AH"], ["D", "AO"]])
    assert len(forced_align._checked(groups, words, [["AH"], ["D", "AO"]])) == 3


def test_pocketsphinx_failure_in_phone_pass_is_an_alignment_error(clips, monkeypatch):
    text, s = clips[1]
    aligner = ForcedAligner([text])

    def fail(*args, **kwargs):
        raise RuntimeError("Failed to stop utterance processing")

    monkeypatch.setattr(ForcedAligner, "_subword_pass", fail)
    monkeypatch.setattr(ForcedAligner, "_phone_pass", fail)
    with pytest.raises(AlignmentError, match="phone alignment failed: pocketsphinx error .*Failed to stop"):
        aligner.align_phones(s.wav, text)


@pytest.mark.parametrize("file_sr", [SR, 22050])
def test_alignment_rejections_name_the_users_file(tmp_path, tiny_params, clips, monkeypatch, file_sr):
    """Every alignment failure - no path, a pocketsphinx error in the phone pass, a lost phone - is a rejection
    "forced alignment failed: <the user's file>: <why>", also when the file was resampled into prepared/audio."""
    text, good = clips[1]
    short = good.wav[: SR // 2]
    nonsense = " ".join(["elephant", "umbrella", "tomorrow", "yesterday"] * 5)
    raw, _ = _raw(tmp_path, [("good", good.wav, text, (), ()), ("mismatch", short, nonsense, (), ()),
                             ("crash", clips[2][1].wav, clips[2][0], (), ()),
                             ("lost", clips[3][1].wav, clips[3][0], (), ())], file_sr)
    tiny_params["prepare"]["chars_per_second"] = [0.5, 1000.0]
    tiny_params["prepare"]["max_rejection_share"] = 0.9
    real_subword, real_phone_pass, real_clipped = (ForcedAligner._subword_pass, ForcedAligner._phone_pass,
                                                   forced_align._clipped)

    def crashing(real):  # as pocketsphinx does now and then: every phone pass (and the fallback) crashes on "birds"
        def run(self, wav16k, words, *args):
            if words[0].word == "birds":
                raise RuntimeError("Failed to stop utterance processing")
            return real(self, wav16k, words, *args)
        return run

    def lose(phone, start, end, word):
        return [] if word.word == "market" and phone == "K" else real_clipped(phone, start, end, word)

    monkeypatch.setattr(ForcedAligner, "_subword_pass", crashing(real_subword))
    monkeypatch.setattr(ForcedAligner, "_phone_pass", crashing(real_phone_pass))
    monkeypatch.setattr(forced_align, "_clipped", lose)
    metrics = prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False)
    report = json.loads((tmp_path / "prepared" / "rejections.json").read_text())
    problems = {r["id"]: r for r in report["rejections"]}
    assert sorted(problems) == ["crash", "lost", "mismatch"]
    for uid, why in [("mismatch", "no path for 20 words"), ("crash", "phone alignment failed: pocketsphinx error"),
                     ("lost", "phone alignment failed: word 'market' got phones M AA R")]:
        user_file = str(raw / "audio" / f"{uid}.wav")
        assert problems[uid]["file"] == user_file
        assert problems[uid]["problem"].startswith(f"forced alignment failed: {user_file}: {why}"), problems[uid]
        assert "prepared" not in problems[uid]["problem"]
    assert metrics["n_alignment_failed"] == 3
    kept = read_manifest(tmp_path / "prepared" / "train.jsonl")
    assert [u.id for u in kept] == ["good"] and kept[0].timing_source == "forced_alignment"
    if file_sr != SR:
        assert "prepared" in kept[0].audio_path and any(r["repair"].startswith("resampled") for r in report["repairs"])


def test_an_aligner_that_cannot_be_built_fails_the_run_instead_of_rejecting_every_utterance(tmp_path, tiny_params,
                                                                                          clips, monkeypatch):
    """A broken pocketsphinx set-up (here: the decoder cannot be built) is the run's error, raised as itself; it must
    not turn into one "forced alignment failed" rejection per untimed utterance and then a misleading
    too-many-rejections error."""
    text, s = clips[0]
    raw, _ = _raw(tmp_path, [("u1", s.wav, text, (), ())], SR)

    def broken(self):
        raise RuntimeError("Failed to initialize decoder: bad config")

    monkeypatch.setattr(ForcedAligner, "_new_align_decoder", broken)
    with pytest.raises(RuntimeError, match="bad config"):
        prepare(tiny_params, raw, tmp_path / "prepared", embed_speakers=False, progress=False)
    assert not (tmp_path / "prepared" / "rejections.json").exists()


def test_alignment_decoders_use_batch_cmn(clips):
    """Both decoders that align (the prepare aligner's and the judge's) run batch CMN: the utterance's own mean."""
    text, _ = clips[0]
    assert ForcedAligner([text])._decoder().config["cmn"] == "batch"
