"""Seeded generator of short coherent stories: each story keeps its people, places and objects and reuses them.

Every story is drawn from its own `random.Random(f"{seed}:{prefix}:{index}")`, so a story does not depend on how many
others were generated before it (the speech subset and the text pool can be sized independently).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from . import lexicon as lx
from .text_norm import normalise

OPENINGS = (
    "one {time} {p1} went to the {pl1} with {p2}",
    "{p1} and {p2} spent the whole {time} at the {pl1}",
    "{p1} had always wanted to visit the {adj} {pl1}",
    "on a {adj} {time} {p1} walked to the {pl1} to look for a {o1}",
    "{p1} lived near the {pl1} and often met {p2} there",
    "it was a {adj} {time} when {p1} first saw the {o1}",
)
MIDDLES = (
    "{p1} {vt} the {adj} {o1} near the {pl1}",
    "{p2} {gvt} a {adj} {o2} {prep} the {pl2}",
    "the {o1} was {adj} and {p1} felt {feel}",
    "{p2} {gvi} {adv} while {p1} {vt} the {o2}",
    "they carried the {o2} from the {pl1} to the {pl2}",
    "{p2} said that the {o3} was hidden {prep} the {co}",
    "{p1} {adv} put the {o1} into a {adj} {co}",
    "near the {pl2} {p2} noticed a {adj} {o3}",
    "{p1} was {feel} because the {o2} looked {adj}",
    "after a while {p2} {vt} the {o3} with a {co}",
    "{p1} told {p2} a story about a {adj} {co} and a {o1}",
    "the {adj} {o3} stood {prep} the {pl1} for the whole {time}",
    "{p2} {gvt} the {o2} and {p1} {gvi} {adv}",
    "when the {o1} fell {p1} {vt} it {adv} and {gvi}",
    "{p1} and {p2} {vt} every {o2} in the {pl2} before the {time} was over",
)
CLOSINGS = (
    "in the end {p1} brought the {o1} back to the {pl1}",
    "{p1} and {p2} went home {adv} with the {o1}",
    "that {time} {p2} remembered the {adj} {o1} and {gvi}",
    "everyone at the {pl1} agreed it had been a {adj} {time}",
    "{p1} never forgot the {o3} from the {pl2}",
)
PREPOSITIONS = ("near", "beside", "behind", "under", "inside", "next to", "in front of", "above")


@dataclass(frozen=True)
class Story:
    story_id: str
    topic: str
    people: tuple[str, ...]
    places: tuple[str, ...]
    objects: tuple[str, ...]
    sentences: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def _fix_articles(sentence: str) -> str:
    """a -> an before a vowel (the templates say "a {adj}" whatever the filler)."""
    words = sentence.split()
    for i in range(len(words) - 1):
        if words[i] == "a" and words[i + 1][0] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def _word(entry: str) -> str:
    return entry.split(":")[0]


def _slots(rng: random.Random, topic: dict, cast: dict) -> dict:
    """Fresh fillers for one sentence; the cast (people, places, objects) is fixed per story."""
    adjectives = topic["adjectives"] + lx.ADJECTIVES + lx.MORE_ADJECTIVES
    return dict(
        cast,
        time=rng.choice(lx.TIMES), adj=rng.choice(adjectives), adv=rng.choice(lx.ADVERBS + lx.MORE_ADVERBS),
        feel=rng.choice(lx.FEELINGS), vt=_word(rng.choice(topic["verbs"])),
        gvt=_word(rng.choice(lx.GENERAL_VERBS_T)), gvi=_word(rng.choice(lx.GENERAL_VERBS_I)),
        prep=rng.choice(PREPOSITIONS), co=rng.choice(lx.COMMON_OBJECTS),
    )


def generate_story(seed: int, prefix: str, index: int, n_sentences: tuple[int, int] = (4, 7),
                   min_words: int = 4, max_words: int = 20) -> Story:
    """One story: an opening, middle sentences, a closing; sentences are normalised and 4..max_words long."""
    rng = random.Random(f"{seed}:{prefix}:{index}")
    topic_name = rng.choice(sorted(lx.TOPICS))
    topic = lx.TOPICS[topic_name]
    people = rng.sample(lx.NAMES, 2)
    places = rng.sample(topic["places"], 2)
    objects = rng.sample(topic["objects"], 3)
    cast = dict(p1=people[0], p2=people[1], pl1=places[0], pl2=places[1], o1=objects[0], o2=objects[1], o3=objects[2])
    n = rng.randint(*n_sentences)
    templates = [rng.choice(OPENINGS)] + rng.sample(MIDDLES, n - 2) + [rng.choice(CLOSINGS)]
    sentences = []
    for tpl in templates:
        for _ in range(10):  # redraw fillers until the sentence fits the length bounds
            s = _fix_articles(normalise(tpl.format(**_slots(rng, topic, cast))))
            if min_words <= len(s.split()) <= max_words:
                sentences.append(s)
                break
    return Story(f"{prefix}{index:06d}", topic_name, tuple(people), tuple(places), tuple(objects), tuple(sentences))


def generate_stories(seed: int, prefix: str, n: int, **kw) -> list[Story]:
    return [generate_story(seed, prefix, i, **kw) for i in range(n)]


def vocabulary_size() -> int:
    """Distinct words the generator can produce (an upper bound of a corpus' vocabulary)."""
    words: set[str] = set()
    pools = [lx.NAMES, lx.TIMES, lx.FEELINGS, lx.ADJECTIVES, lx.MORE_ADJECTIVES, lx.ADVERBS, lx.MORE_ADVERBS,
             lx.COMMON_OBJECTS, lx.GENERAL_VERBS_T, lx.GENERAL_VERBS_I, PREPOSITIONS, OPENINGS, MIDDLES, CLOSINGS]
    pools += [v for t in lx.TOPICS.values() for v in t.values()]
    for pool in pools:
        for entry in pool:
            words.update(normalise(_word(entry).replace("{", " {")).split())
    return len({w for w in words if "{" not in w})
