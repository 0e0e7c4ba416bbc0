"""Coherence judges: KN LM normalisation against brute force, save/load, story consistency, MiniLM similarity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from taste.evaluation.coherence import (
    EOS,
    KneserNeyLM,
    StoriesFileError,
    StoryConsistency,
    embedding_similarity,
    read_stories,
    reference_sentences,
)

TEXT = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog ran to the park"]


@pytest.fixture(scope="module")
def lm():
    return KneserNeyLM().fit(TEXT)


@pytest.mark.parametrize("history", [("<s>", "<s>"), ("<s>", "the"), ("the", "cat"), ("sat", "on"), ("zebra", "unseen")])
def test_kn_distribution_sums_to_at_most_one(lm, history):
    # Over the known vocabulary (+ </s>) the mass is <= 1; the remainder is the <unk> floor, small but positive.
    total = sum(lm.prob(history, w) for w in lm.vocab)
    assert 0.9 < total < 1.0 + 1e-9
    assert lm.prob(history, "never_seen_word") > 0


def test_kn_prefers_seen_text(lm):
    assert lm.perplexity("the cat sat on the mat") < lm.perplexity("mat the on sat cat the")
    assert lm.perplexity("the dog sat on the log") < lm.perplexity("purple ideas sleep furiously")
    lp, n = lm.log_prob("the cat")
    assert n == 3 and lp < 0


def test_kn_reference_trigram(lm):
    # Slow reference for one seen trigram: (c - D)/total + D * N1+(h .)/total * P_bi.
    d = lm.config.discount
    counts = lm.tri[("sat", "on")]
    p_bi = lm._p_bi("on", "the")
    expected = (counts["the"] - d) / sum(counts.values()) + d * len(counts) / sum(counts.values()) * p_bi
    assert lm.prob(("sat", "on"), "the") == pytest.approx(expected)
    assert EOS in lm.vocab


def test_kn_save_load_round_trip(lm, tmp_path):
    lm.save(tmp_path / "lm.json")
    again = KneserNeyLM.load(tmp_path / "lm.json")
    for text in TEXT + ["a dog sat on a cat", "unknown words here"]:
        assert again.perplexity(text) == pytest.approx(lm.perplexity(text))
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        KneserNeyLM.load(tmp_path / "nothing.json")


def test_kn_rejects_empty_training_text():
    with pytest.raises(ValueError, match="no training text"):
        KneserNeyLM().fit([])


def _stories_file(tmp_path):
    rows = [
        {"story_id": "s1", "topic": "farm", "people": ["Anna"], "places": ["the barn"], "objects": ["a goat"],
         "sentences": ["Anna walked to the barn.", "She fed the goat some hay.", "The goat was happy."]},
        {"story_id": "s2", "topic": "sea", "people": ["Tom"], "places": ["the harbour"], "objects": ["a boat"],
         "sentences": ["Tom sailed from the harbour.", "The boat rocked on the waves.", "Tom saw a whale."]},
    ]
    path = tmp_path / "stories.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_story_consistency(tmp_path):
    judge = StoryConsistency(read_stories(_stories_file(tmp_path)))
    same = judge.score("s1", "anna gave the goat more hay in the barn")
    other = judge.score("s1", "tom sailed the boat past the whale on the waves")
    nothing = judge.score("s1", "it was fine")
    assert same["entity_precision"] == 1.0 and same["entity_kept"] == 1.0 and same["topic_match"] == 1.0
    assert other["entity_precision"] == 0.0 and other["topic_match"] == 0.0 and other["story_consistency"] == 0.0
    assert math.isnan(nothing["entity_precision"]) and nothing["story_consistency"] == 0.0
    with pytest.raises(KeyError, match="s9"):
        judge.score("s9", "anna")


def test_reference_sentences_exclude_stories(tmp_path):
    stories = read_stories(_stories_file(tmp_path))
    assert reference_sentences(stories, {"s1"}) == ["tom sailed from the harbour", "the boat rocked on the waves",
                                                    "tom saw a whale"]


def test_bad_stories_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"story_id": "x"}\n')
    with pytest.raises(StoriesFileError, match="bad.jsonl:1"):
        read_stories(path)
    with pytest.raises(FileNotFoundError):
        read_stories(tmp_path / "none.jsonl")


class FakeEncoder:
    """Bag-of-letters embedding: similar strings get similar vectors."""

    def encode(self, texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False):
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_embedding_similarity_with_fake_encoder():
    sims = embedding_similarity(FakeEncoder(), ["abc", "abc", "abc"], ["abc", "xyz", ""])
    assert sims[0] == pytest.approx(1.0) and sims[1] == pytest.approx(0.0) and sims[2] == 0.0
    with pytest.raises(ValueError, match="2 prompts but 1"):
        embedding_similarity(FakeEncoder(), ["a", "b"], ["a"])


@pytest.mark.slow
def test_minilm_ranks_related_text_higher():
    from taste.evaluation.coherence import load_sentence_encoder

    encoder = load_sentence_encoder()
    sims = embedding_similarity(encoder, ["the farmer fed his goats"] * 2,
                                ["the goats ate hay on the farm", "stock markets fell sharply today"])
    assert sims[0] > sims[1] + 0.2
