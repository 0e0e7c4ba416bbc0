"""Immutable records for utterances and their alignments, and JSON-lines manifests of them."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


class ManifestError(ValueError):
    """A manifest line is not valid JSON or lacks a required field."""


@dataclass(frozen=True)
class WordAlignment:
    """One word with its start and duration in seconds; `markup` is the SSML prosody it was spoken with."""

    word: str
    start: float
    duration: float
    markup: str | None = None

    @property
    def end(self) -> float:
        return self.start + self.duration

    def shifted(self, offset: float) -> "WordAlignment":
        return dataclasses.replace(self, start=self.start + offset)

    def scaled(self, factor: float) -> "WordAlignment":
        return dataclasses.replace(self, start=self.start * factor, duration=self.duration * factor)


@dataclass(frozen=True)
class PhoneAlignment:
    """One phone with start and duration in seconds: an espeak mnemonic (synthetic corpus, from espeak's own events)
    or an ARPAbet phone (a real corpus timed by forced alignment; see `Utterance.timing_source`)."""

    phone: str
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration

    def shifted(self, offset: float) -> "PhoneAlignment":
        return dataclasses.replace(self, start=self.start + offset)


@dataclass(frozen=True)
class PairInfo:
    """Membership in a swap set. set: global_rate (slow|fast), global_pitch (low|high), local (base|variant)."""

    set: str
    pair_id: str
    role: str
    changed_word: int | None = None


TIMING_SOURCES = ("corpus", "forced_alignment")


@dataclass(frozen=True)
class Utterance:
    """One utterance of a manifest. `audio_path` is relative to the repository root.

    `timing_source` says where `words` and `phones` came from: "corpus" (given with the audio, as the synthetic
    corpus' exact espeak events; the default, left out of the JSON so such manifests stay as they were) or
    "forced_alignment" (the prepare stage aligned the known transcript, `taste.data.forced_align`).
    """

    id: str
    audio_path: str
    duration: float
    sample_rate: int
    text: str
    speaker: str
    split: str
    rate_wpm: float | None
    pitch: float | None
    words: tuple[WordAlignment, ...] = ()
    phones: tuple[PhoneAlignment, ...] = ()
    story_id: str | None = None
    pair: PairInfo | None = None
    timing_source: str = "corpus"

    def __post_init__(self) -> None:
        if self.timing_source not in TIMING_SOURCES:
            raise ValueError(f"utterance {self.id}: timing_source {self.timing_source!r} is not one of "
                             f"{', '.join(TIMING_SOURCES)}")
        if self.words and len(self.words) != len(self.text.split()):
            raise ValueError(
                f"utterance {self.id}: {len(self.words)} word alignments for {len(self.text.split())} words")

    def replace(self, **changes) -> "Utterance":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["timing_source"] == "corpus":  # the default is left out: manifests written before the field are unchanged
            del d["timing_source"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Utterance":
        d = dict(d)
        d["words"] = tuple(WordAlignment(**w) for w in d.get("words") or ())
        d["phones"] = tuple(PhoneAlignment(**p) for p in d.get("phones") or ())
        d["pair"] = PairInfo(**d["pair"]) if d.get("pair") else None
        return cls(**d)


def utterance_to_json(utt: Utterance) -> str:
    """One manifest line (sorted keys, so equal utterances give identical bytes)."""
    return json.dumps(utt.to_dict(), sort_keys=True, ensure_ascii=False)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSON-lines manifest; raises FileNotFoundError / ManifestError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Utterance.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError, ValueError) as e:
                raise ManifestError(f"{path}:{lineno}: bad manifest line: {e}") from e
    return out


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write utterances as JSON lines, in the given order, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for utt in utterances:
            f.write(utterance_to_json(utt) + "\n")
    tmp.replace(path)


def read_text_pool_sentences(path: str | Path, limit: int | None = None) -> list[str]:
    """The first `limit` sentences (all when None) of a text pool file: one sentence a line, blank lines between
    stories. Raises FileNotFoundError naming the file when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text pool not found (run `taste materialise`)")
    with path.open(encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    return sentences if limit is None else sentences[:limit]
