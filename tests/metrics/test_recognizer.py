"""Pocketsphinx with a corpus LM on espeak speech: recognition, forced alignment vs espeak's own word events."""
import numpy as np
import pytest

from synth_helper import synthesise
from taste.data import forced_align
from taste.data.forced_align import (AlignmentError, espeak_pronunciation, letter_pronunciation, pronunciations)
from taste.metrics.recognizer import JudgeLeakError, Pocketsphinx, blind_corpus, check_blind

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy cat sleeps on the warm mat",
    "my sister found a zorblat in the garden",
    "the old man walked to the market",
]


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    return Pocketsphinx(SENTENCES, cache_root=tmp_path_factory.mktemp("ps"))


def test_recognises_corpus_sentence(recognizer):
    wav, _ = synthesise(SENTENCES[0], rate_wpm=160)
    assert recognizer.transcribe(wav) == SENTENCES[0]
    assert 0 < recognizer.real_time_factor < 1.0


def test_out_of_dictionary_word_gets_espeak_pronunciation(recognizer):
    assert recognizer.pronunciation_source["zorblat"] == "espeak"
    assert recognizer.pronunciation_source["garden"] == "cmudict"
    assert espeak_pronunciation("zorblat")[:2] == ["Z", "AO"]
    assert letter_pronunciation("ox") == ["AA", "K", "S"]
    prons, _ = pronunciations(["the"])
    assert ["DH", "AH"] in prons["the"]


@pytest.mark.parametrize("rate", [120, 220])
def test_forced_alignment_matches_espeak_events(recognizer, rate):
    text = SENTENCES[0]
    wav, starts = synthesise(text, rate_wpm=rate)
    words = recognizer.align(wav, text)
    assert [w.word for w in words] == text.split()
    got = np.array([w.start for w in words])
    # Word starts within 50 ms of the synthesiser's own word events (the aligner works at 10 ms frames).
    assert np.max(np.abs(got - np.array(starts))) < 0.05
    # A word's aligned span never runs past the next word's start: durations agree with the event intervals.
    intervals = np.diff(starts)
    durs = np.array([w.duration for w in words[:-1]])
    assert np.all(durs <= intervals + 0.05)
    assert np.corrcoef(durs, intervals)[0, 1] > 0.8


def test_alignment_durations_follow_rate(recognizer):
    text = SENTENCES[3]
    slow = recognizer.align(synthesise(text, rate_wpm=110)[0], text)
    fast = recognizer.align(synthesise(text, rate_wpm=240)[0], text)
    assert sum(w.duration for w in slow) > 1.5 * sum(w.duration for w in fast)


def test_align_words_outside_corpus(recognizer):
    text = "the dog sleeps in the garden"
    words = recognizer.align(synthesise(text)[0], text)
    assert [w.word for w in words] == text.split()


def test_alignment_failure_is_clear(recognizer):
    too_short = np.zeros(800, np.float32)  # 50 ms cannot hold nine words
    with pytest.raises(AlignmentError, match="forced alignment failed"):
        recognizer.align(too_short, SENTENCES[0])
    with pytest.raises(ValueError, match="non-empty"):
        recognizer.align(too_short, "  ")


def test_empty_corpus_rejected(tmp_path):
    with pytest.raises(ValueError, match="non-empty corpus sentence"):
        Pocketsphinx(["", "!!"], cache_root=tmp_path)


def test_cache_reused(tmp_path):
    a = Pocketsphinx(SENTENCES[:2], cache_root=tmp_path)
    b = Pocketsphinx(list(reversed(SENTENCES[:2])), cache_root=tmp_path)
    assert a.lm_path == b.lm_path and a.lm_path.is_file()
    assert len(list(tmp_path.iterdir())) == 1


def test_blind_corpus_removes_every_scored_sentence_in_any_spelling():
    corpus = ["The old man walked to the market.", "a lazy cat sleeps on the warm mat", "tom sailed the boat"]
    kept, removed = blind_corpus(corpus, ["the old man walked to the market", "tom sailed the boat"])
    assert kept == ["a lazy cat sleeps on the warm mat"] and removed == 2
    check_blind(kept, ["the old man walked to the market"])  # nothing leaks: no error


def test_recogniser_refuses_an_lm_that_knows_the_answer(tmp_path):
    with pytest.raises(JudgeLeakError, match="1 scored sentences"):
        Pocketsphinx(SENTENCES, cache_root=tmp_path, scored_sentences=["The quick brown fox jumps over the lazy dog!"])
    assert not any(tmp_path.iterdir())  # refused before any LM was built


def test_one_implementation_judge_and_aligner():
    """The judge is the data-level aligner plus the blindness check, not a second copy of it."""
    import taste.metrics.recognizer as judge

    assert issubclass(Pocketsphinx, forced_align.Pocketsphinx)
    assert judge.AlignmentError is forced_align.AlignmentError
    assert not hasattr(forced_align, "check_blind")
