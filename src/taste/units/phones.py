"""Phone inventory -> CTC targets, and per-unit ground-truth phone labels (for purity / PNMI)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from taste.data.records import PhoneAlignment

# espeak reports pauses and word boundaries as "phones"; they carry no content to transcribe
SILENCE_PHONES = frozenset({"", "_", "_:", "_!", "_^_", "||", "|", "sil", "sp", "spn", "pau"})
STRESS_MARKS = "',"   # espeak's primary / secondary stress prefixes: prosody, not phone identity


def base_phone(phone: str) -> str:
    """The phone without espeak stress marks ("'aI" and ",aI" -> "aI")."""
    return phone.lstrip(STRESS_MARKS) or phone


class PhoneInventoryError(ValueError):
    """phones.json is missing, malformed, or an alignment uses a phone outside it."""


@dataclass(frozen=True)
class PhoneVocab:
    """Phone strings <-> CTC class ids (blank = 0, phone i -> i + 1). Silence phones are dropped from targets;
    stress-marked variants map to their base phone."""

    phones: tuple[str, ...]

    @property
    def n_phones(self) -> int:
        return len(self.phones)

    def index(self, phone: str) -> int:
        """0-based phone index (no blank offset)."""
        try:
            return self._lookup[base_phone(phone)]
        except KeyError:
            raise PhoneInventoryError(f"phone {phone!r} is not in the inventory of {self.n_phones} phones") from None

    @property
    def _lookup(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.phones)}

    def ctc_targets(self, phones: Sequence[PhoneAlignment]) -> list[int]:
        """CTC target ids (1-based) of the non-silence phones, in order."""
        lookup = self._lookup
        out = []
        for p in phones:
            if p.phone in SILENCE_PHONES:
                continue
            key = base_phone(p.phone)
            if key not in lookup:
                raise PhoneInventoryError(f"phone {p.phone!r} is not in the inventory of {self.n_phones} phones")
            out.append(lookup[key] + 1)
        return out


def load_phone_vocab(path: str | os.PathLike) -> PhoneVocab:
    """phones.json: a list of phones, {"phones": [...]}, or {phone: id}. Silence phones are left out."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: phone inventory not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PhoneInventoryError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict) and "phones" in data:
        data = data["phones"]
    if isinstance(data, dict):
        data = sorted(data, key=lambda p: data[p])
    if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
        raise PhoneInventoryError(f"{path}: expected a list of phone strings")
    phones = tuple(dict.fromkeys(base_phone(p) for p in data if p not in SILENCE_PHONES))
    if not phones:
        raise PhoneInventoryError(f"{path}: the inventory has no (non-silence) phones")
    return PhoneVocab(phones)


def unit_phone_labels(phones: Sequence[PhoneAlignment], n_units: int, rate_hz: float, vocab: PhoneVocab) -> np.ndarray:
    """The phone under the centre of each unit frame: int array [n_units], 0-based phone index, -1 for silence/none."""
    labels = np.full(n_units, -1, dtype=np.int64)
    centres = (np.arange(n_units) + 0.5) / rate_hz
    lookup = vocab._lookup
    for p in phones:
        key = base_phone(p.phone)
        if p.phone in SILENCE_PHONES or key not in lookup:
            continue
        inside = (centres >= p.start) & (centres < p.start + p.duration)
        labels[inside] = lookup[key]
    return labels
