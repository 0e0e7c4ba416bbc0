"""A corpus without story metadata (empty stories.jsonl, e.g. LibriSpeech): the reference LM falls back to the
train-split transcripts + text pool minus every scored sentence, and the story judges are skipped with a reason."""

from __future__ import annotations

import pytest

from taste.data.text_norm import normalise
from taste.evaluation.coherence import (
    NO_STORY_METADATA,
    REFERENCE_TEXT_FALLBACK,
    REFERENCE_TEXT_STORIES,
    KneserNeyLM,
    Story,
    StoryConsistency,
    read_stories,
    reference_lm_text,
    reference_sentences,
)
from taste.evaluation.probes import storycloze_skip_reason
from taste.evaluation.report import skipped_story_judges

STORIES = [Story(f"s{i}", "farm", ("anna",), ("the barn",), ("a goat",),
                 (f"anna went to the barn {i}", f"the goat ate hay {i}")) for i in range(40)]
TRAIN = ["He walked home, slowly.", "the night was dark", "she read a book"]
POOL = ["a ship sailed at dawn", "The night was dark!"]


def test_with_stories_nothing_changes():
    speech = {f"s{i}" for i in range(5)}
    text, source = reference_lm_text(STORIES, speech, {"s0"}, TRAIN + POOL, ["the night was dark"])
    assert source == REFERENCE_TEXT_STORIES
    assert text == reference_sentences(STORIES, speech)  # 70 sentences >= 50: the speech stories excluded


def test_tiny_story_corpus_keeps_the_old_fallback():
    stories = STORIES[:10]
    text, source = reference_lm_text(stories, {s.story_id for s in stories}, {"s0"}, TRAIN, [])
    assert source == REFERENCE_TEXT_STORIES
    assert text == reference_sentences(stories, {"s0"})


def test_no_stories_falls_back_to_transcripts_and_pool_blind_to_scored(tmp_path):
    (tmp_path / "stories.jsonl").write_text("")
    stories = read_stories(tmp_path / "stories.jsonl")
    assert stories == []
    with pytest.raises(ValueError):
        KneserNeyLM().fit(reference_sentences(stories, set()))  # what the notebook hit before
    scored = ["The night was dark.", "he walked home slowly"]  # scored in another spelling: still removed
    text, source = reference_lm_text(stories, set(), set(), TRAIN + POOL, scored)
    assert source == REFERENCE_TEXT_FALLBACK
    assert text == ["she read a book", "a ship sailed at dawn"]
    assert not {normalise(s) for s in scored} & set(text)
    lm = KneserNeyLM().fit(text)
    assert lm.perplexity("she read a book") < lm.perplexity("book a read she")


def test_no_text_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="no text for the reference LM"):
        reference_lm_text([], set(), set(), ["only this"], ["Only this."])


def test_story_judges_and_storycloze_skipped_with_reason():
    assert skipped_story_judges(StoryConsistency([]), ["s1", None]) == {
        "story_consistency": NO_STORY_METADATA, "story_consistency_ps": NO_STORY_METADATA}
    consistency = StoryConsistency(STORIES)
    assert skipped_story_judges(consistency, ["s1", "s2"]) == {}
    assert set(skipped_story_judges(consistency, [None, "unknown"], suffixes=("",))) == {"story_consistency"}
    reason = storycloze_skip_reason([])
    assert reason and NO_STORY_METADATA in reason
    assert storycloze_skip_reason(STORIES) is None
