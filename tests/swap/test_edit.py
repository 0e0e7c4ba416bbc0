"""Local pairs made from the speech itself: one word's span stretched or pitch-shifted, the rest untouched."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from taste.data.features import MelConfig
from taste.data.pitch import PitchConfig, track_pitch
from taste.data.records import PairInfo, Utterance, WordAlignment
from taste.swap.edit import (EditedSpan, EditSettings, base_utterances, edit_settings_from_params, edit_span, edited_utterance,
                             encode_edited, make_edited_pairs, pitch_tracks_of)
from taste.swap.jobs import build_pairs

SR = 16000


def tone(seconds, hz, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(2 * np.pi * 2 * hz * t)).astype(np.float32)


def three_words():
    """Three 'words' of 0.4 s each: 150 Hz, 200 Hz, 150 Hz."""
    wav = np.concatenate([tone(0.4, 150), tone(0.4, 200), tone(0.4, 150)])
    words = tuple(WordAlignment(w, 0.4 * i, 0.4) for i, w in enumerate(("one", "two", "three")))
    utt = Utterance(id="u1", audio_path="data/raw/u1.wav", duration=1.2, sample_rate=SR, text="one two three",
                    speaker="s1", split="test", rate_wpm=None, pitch=None, words=words,
                    pair=PairInfo("local", "p1", "base", 1))
    return wav, utt


def test_stretch_lengthens_only_the_span():
    wav, _ = three_words()
    s = EditSettings(stretch_factor=2.0, crossfade_s=0.01)
    out, span = edit_span(wav, SR, 0.4, 0.8, "stretch", s)
    assert len(out) - len(wav) == round(span.shift_s * SR)
    assert span.duration_s == pytest.approx(0.8, abs=0.002)  # 2x the 0.4 s word
    assert span.shift_s == pytest.approx(0.42, abs=0.002)  # the 10 ms contexts are stretched too
    keep = int(0.39 * SR)
    np.testing.assert_array_equal(out[:keep], wav[:keep])  # before the left crossfade: untouched
    np.testing.assert_array_equal(out[-keep:], wav[-keep:])  # after the right one: untouched, only moved
    # the stretched span keeps its pitch (a phase vocoder, not resampling)
    f0 = track_pitch(out, PitchConfig()).numpy()
    mid = f0[int(0.6 * 100):int(1.0 * 100)]
    assert np.median(mid[mid > 0]) == pytest.approx(200, rel=0.05)


def test_shift_raises_pitch_of_the_span_and_keeps_length():
    wav, _ = three_words()
    s = EditSettings(shift_semitones=8.0)
    out, span = edit_span(wav, SR, 0.4, 0.8, "shift", s)
    assert len(out) == len(wav) and span == EditedSpan(pytest.approx(0.4, abs=1 / SR), pytest.approx(0.4, abs=1 / SR), 0.0)
    f0 = track_pitch(out, PitchConfig()).numpy()
    before, inside = f0[5:35], f0[45:75]
    assert np.median(before[before > 0]) == pytest.approx(150, rel=0.03)
    assert np.median(inside[inside > 0]) == pytest.approx(200 * 2 ** (8 / 12), rel=0.05)
    np.testing.assert_array_equal(out[:int(0.39 * SR)], wav[:int(0.39 * SR)])


def test_edited_utterance_moves_the_later_words():
    _, utt = three_words()
    v = edited_utterance(utt, 1, "stretch", EditedSpan(0.41, 1.0, 0.62), int(1.82 * SR), "outputs/x.flac")
    assert v.text == utt.text and v.id == "u1~stretch" and v.duration == pytest.approx(1.82)
    assert [w.duration for w in v.words] == pytest.approx([0.4, 1.0, 0.4])
    assert [w.start for w in v.words] == pytest.approx([0.0, 0.41, 1.42])
    assert v.pair == PairInfo("local", "stretch:u1", "variant", 1)
    with pytest.raises(ValueError, match="u1.*word 5"):
        edited_utterance(utt, 5, "stretch", EditedSpan(0.4, 1.0, 0.6), SR, "x")
    with pytest.raises(ValueError, match="no word timings"):
        edited_utterance(utt.replace(words=()), 1, "stretch", EditedSpan(0.4, 1.0, 0.6), SR, "x")


def test_edited_pairs_are_local_pairs_on_the_changed_word():
    wav, utt = three_words()
    bases = base_utterances([utt, utt.replace(id="u2", pair=PairInfo("local", "p1", "variant", 1))], 10)
    assert [(b.id, j) for b, j in bases] == [("u1", 1)]
    written = {}
    utts, audio, kinds = make_edited_pairs(bases, lambda u: wav, EditSettings(),
                                           lambda name, w, sr: written.setdefault(name, f"out/{name}.flac"))
    assert kinds == {"stretch:u1": "rate", "shift:u1": "pitch"}
    assert set(written) == {"u1~stretch", "u1~shift"}
    pairs = build_pairs(utts)
    assert {p.pair_id for p in pairs} == {"stretch:u1", "shift:u1"}
    assert all(p.set == "local" and p.changed_word == 1 for p in pairs)
    assert {p.direction for p in pairs} == {"variant->base", "base->variant"}
    for u in utts:  # every record has its own audio; the base's is the recording itself
        assert u.id in audio
        if u.pair.role == "base":
            np.testing.assert_array_equal(audio[u.id], wav)
    stretched = next(u for u in utts if u.id == "u1~stretch")
    assert stretched.words[1].duration == pytest.approx(1.0, abs=0.05)  # default 2.5x of 0.4 s


def test_settings_are_checked():
    from dataclasses import replace

    from taste.config import ParamsError, load_params

    section = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["swap"]["edited"]
    full = edit_settings_from_params(section)
    assert edit_settings_from_params({**section, "stretch_factor": 2, "kinds": ["shift"], "max_bases": "4"}) == replace(
        full, stretch_factor=2.0, kinds=("shift",), max_bases=4)
    with pytest.raises(ParamsError, match=r"swap.edited: missing \['dev_bases'\]"):
        edit_settings_from_params({k: v for k, v in section.items() if k != "dev_bases"})
    with pytest.raises(ValueError, match="unknown edit"):
        EditSettings(kinds=("reverse",))
    with pytest.raises(ValueError, match="empty"):
        edit_span(np.zeros(SR, np.float32), SR, 2.0, 2.5, "stretch", EditSettings())


def test_a_base_shared_by_two_edits_is_encoded_and_tracked_once():
    wav, utt = three_words()
    utts, audio, _ = make_edited_pairs(base_utterances([utt], 10), lambda u: wav, EditSettings())
    calls = []

    class CountingTokenizer:
        def encode(self, mel, text):
            calls.append(text)
            return SimpleNamespace(codes=np.full((len(text.split()), 1), mel.shape[-1]))

    codes = encode_edited(CountingTokenizer(), utts, audio, MelConfig())
    assert len(utts) == 4 and len(calls) == 3  # one base + two variants
    assert set(codes) == {u.id for u in utts}
    np.testing.assert_array_equal(codes["u1~base-stretch"], codes["u1~base-shift"])
    tracks = pitch_tracks_of(audio, PitchConfig())
    assert set(tracks) == set(audio)
    assert tracks["u1~base-stretch"] is tracks["u1~base-shift"]
    expected = track_pitch(wav, PitchConfig()).numpy()
    np.testing.assert_array_equal(tracks["u1~base-shift"], expected)
    assert not np.array_equal(tracks["u1~shift"], expected)
