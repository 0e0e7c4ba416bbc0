import numpy as np
import pytest

from taste.data import lexicon
from taste.data.storygen import generate_stories, generate_story, vocabulary_size
from taste.data.synth import SynthesisError, build_ssml, events_to_alignments, synthesise

WORDS = tuple("in the end the old captain walked slowly to the harbour".split())


def _speak(markups=None, voice="en+m3", rate=170, pitch=50, words=WORDS):
    return synthesise(words, markups or (None,) * len(words), voice, rate, pitch, dither=3e-4, dither_seed=1)


def test_alignments_are_ordered_and_inside_the_audio():
    s = _speak()
    assert [w.word for w in s.words] == list(WORDS)  # one alignment per word, "in the" merges are split
    ends = [w.start for w in s.words] + [s.duration]
    assert all(w.duration > 0 for w in s.words)
    assert all(w.start + w.duration <= nxt + 1e-6 for w, nxt in zip(s.words, ends[1:]))
    assert all(p.duration > 0 and p.start + p.duration <= s.duration + 1e-6 for p in s.phones)
    assert s.wav.dtype == np.float32 and np.abs(s.wav).max() <= 0.95 + 1e-6
    assert np.count_nonzero(s.wav == 0.0) < 0.01 * len(s.wav)  # dithered: no digital silence


def test_synthesis_is_a_pure_function_of_its_inputs():
    a = _speak()
    _speak(voice="en+f2", rate=240, pitch=90, markups=(None, "rate=50%") * 5 + (None,))  # history must not matter
    b = _speak()
    assert np.array_equal(a.wav, b.wav) and a.words == b.words


@pytest.mark.parametrize("markup,longer", [("rate=50%", True), ("rate=200%", False)])
def test_word_markup_changes_only_that_words_timing(markup, longer):
    j = WORDS.index("captain")
    plain = _speak()
    marked = _speak(markups=tuple(markup if i == j else None for i in range(len(WORDS))))
    ratio = marked.words[j].duration / plain.words[j].duration
    assert (ratio > 1.4) if longer else (ratio < 0.75)
    assert marked.words[j].markup == markup and marked.words[0].markup is None
    assert abs(marked.words[1].duration - plain.words[1].duration) < 0.03  # an earlier word is untouched


def test_global_rate_changes_duration():
    slow, fast = _speak(rate=120), _speak(rate=230)
    assert slow.duration > 1.4 * fast.duration


def test_build_ssml_positions_point_at_words():
    words = ("a", "big", "dog", "ran")
    ssml, pos = build_ssml(words, (None, "pitch=+30%", "break=200ms", "rate=60%"))
    assert [ssml[p - 1:p - 1 + len(w)] for p, w in zip(pos, words)] == list(words)
    assert '<prosody pitch="+30%">big</prosody>' in ssml and 'dog<break time="200ms"/>' in ssml
    with pytest.raises(ValueError):
        build_ssml(words, (None, None, None, "volume=5"))


def test_event_mismatch_raises():
    events = ((1, 0, 8), (7, 10, "D"))  # one word event, then a phone, for two words of unknown position
    with pytest.raises(SynthesisError):
        events_to_alignments(events, 100, ("x", "y"), (None, None), (100, 200), lambda w: 1)


def test_stories_are_deterministic_and_coherent():
    a, b = generate_stories(3, "t", 30), generate_stories(3, "t", 30)
    assert a == b and generate_story(3, "t", 7) == a[7]  # a story does not depend on the others
    assert a != generate_stories(4, "t", 30)
    for story in a:
        assert 4 <= len(story.sentences) <= 7
        assert all(4 <= len(s.split()) <= 20 for s in story.sentences)
        text = " ".join(story.sentences).split()
        assert story.people[0] in text and story.places[0] in text  # the cast recurs
        assert sum(text.count(o) for o in story.objects) >= 2


def test_lexicon_size():
    assert len(lexicon.TOPICS) >= 20
    assert vocabulary_size() >= 1500
