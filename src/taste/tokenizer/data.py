"""Training items for the tokenizer. The speech encoder is frozen, so its key/value states are computed once
per utterance here and cached in memory (float16) instead of running the encoder at every step."""

from __future__ import annotations

import math

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor
from torch.utils.data import Dataset

from taste.tokenizer.model import TasteTokenizer, TextBatch
from taste.tokenizer.streams import build_stream, word_boundaries


@dataclass(frozen=True)
class TasteItem:
    """One utterance, ready for the tokenizer. keys/values: Tensor[T, D] float16; units: Long[U]."""

    id: str
    text: str
    token_ids: tuple[int, ...]
    word_index: tuple[int, ...]
    keys: Tensor
    values: Tensor
    speaker: Tensor
    units: Tensor
    boundaries: tuple[int, ...]
    word_starts_s: tuple[float, ...]
    word_durations_s: tuple[float, ...]

    @property
    def n_words(self) -> int:
        return len(self.boundaries)

    @property
    def has_timings(self) -> bool:
        """False for an item built with allow_missing_timings from an utterance without word timings."""
        return bool(self.boundaries)


class MissingWordTimingsError(ValueError):
    """An utterance has no word timings: the tokenizer's targets and duration ground truth need them."""


def _word_starts(utt) -> tuple[list[float], list[float]]:
    """Ground-truth word starts/durations from the utterance's word alignments (never invented)."""
    if not utt.words:
        raise MissingWordTimingsError(
            f"utterance {utt.id!r} has no word timings: the tokenizer's word boundaries and duration ground truth "
            f"need them; give the corpus word timings, or add them by forced alignment in the prepare stage")
    return [w.start for w in utt.words], [w.duration for w in utt.words]


def build_items(model: TasteTokenizer, utterances: Sequence, mels: Mapping[str, Tensor] | object,
                units: Mapping[str, Tensor], speakers: object, rate_hz: float, batch_size: int = 16,
                allow_missing_timings: bool = False) -> list[TasteItem]:
    """Run the frozen encoder once per utterance (batched) and pair its states with text, units and boundaries.

    mels/speakers: anything with `.get(utt_id)` (e.g. taste.data.loaders.FeatureStore). Utterances with fewer
    units than words are skipped (they cannot give each word a unit). An utterance without word timings raises
    MissingWordTimingsError (before the encoder runs), unless allow_missing_timings: then its item has no
    boundaries and no word starts/durations (empty tuples; `has_timings` is False), usable where only the text and
    encoder states matter, never as training targets."""
    from taste.asr.bpe import word_ids
    from taste.asr.features import pad_mels

    usable = [u for u in utterances if u.id in units and len(units[u.id]) >= len(u.text.split()) > 0]
    if not allow_missing_timings:
        untimed = [u.id for u in usable if not u.words]
        if untimed:
            raise MissingWordTimingsError(
                f"{len(untimed)} of {len(usable)} utterances have no word timings, e.g. {untimed[:3]}: the "
                f"tokenizer's word boundaries and duration ground truth need them; give the corpus word timings, "
                f"or add them by forced alignment in the prepare stage")
    items: list[TasteItem] = []
    for start in range(0, len(usable), batch_size):
        chunk = usable[start : start + batch_size]
        mel, lengths = pad_mels([mels.get(u.id) for u in chunk])
        keys, values, frames = model.encoder_states(mel, lengths)
        for i, utt in enumerate(chunk):
            ids, widx = word_ids(model.bpe, utt.text)
            u = units[utt.id]
            starts, durs = _word_starts(utt) if utt.words else ([], [])
            t = int(frames[i])
            items.append(TasteItem(
                id=utt.id, text=utt.text, token_ids=tuple(ids), word_index=tuple(widx),
                keys=keys[i, :t].half().clone(), values=values[i, :t].half().clone(),
                speaker=speakers.get(utt.id).float(), units=u,
                boundaries=tuple(word_boundaries(starts, len(u), rate_hz)) if starts else (),
                word_starts_s=tuple(starts), word_durations_s=tuple(durs)))
    return items


def with_last_layer_values(items: Sequence[TasteItem]) -> list[TasteItem]:
    """Ablation: values from the last layer (= the keys) instead of a shallow one."""
    return [replace(it, values=it.keys) for it in items]


class ItemDataset(Dataset):
    def __init__(self, items: Sequence[TasteItem]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> TasteItem:
        return self.items[i]


@dataclass
class TasteBatch:
    """Padded batch. keys/values: [B, T, D]; frame_lengths, n_words: Long[B]; speaker: [B, 256]; stream: Long[B, S] (-1 pad)."""

    ids: list[str]
    text: TextBatch
    keys: Tensor
    values: Tensor
    frame_lengths: Tensor
    speaker: Tensor
    stream: Tensor
    word_frames: Tensor | None = None  # Long[B, N, 2]: each word's [first, last + 1) encoder frame (-1 = pad)
    word_durations: Tensor | None = None  # Float[B, N]: each word's ground-truth duration in seconds (0 = pad)


def word_frame_spans(starts_s: Sequence[float], durations_s: Sequence[float], n_frames: int,
                     frame_rate_hz: float) -> list[tuple[int, int]]:
    """Ground-truth word timings -> [first, last + 1) encoder frames, clipped to the utterance; never empty."""
    spans = []
    for start, dur in zip(starts_s, durations_s):
        a = min(max(int(math.floor(start * frame_rate_hz)), 0), n_frames - 1)
        b = min(max(int(math.ceil((start + dur) * frame_rate_hz)), a + 1), n_frames)
        spans.append((a, b))
    return spans


class Collate:
    """Pads items and builds the decoder's target stream for the conditioning mode (and each word's frame span
    at the speech encoder's rate, for the aggregator's alignment loss)."""

    def __init__(self, mode: str, n_units: int, frame_rate_hz: float = 50.0) -> None:
        self.mode, self.n_units, self.frame_rate_hz = mode, n_units, frame_rate_hz

    def __call__(self, items: Sequence[TasteItem]) -> TasteBatch:
        from taste.tokenizer.model import pad_text

        untimed = [it.id for it in items if not it.has_timings]
        if untimed:
            raise MissingWordTimingsError(f"items without word timings cannot be training targets: {untimed[:3]}")
        text = pad_text([(it.token_ids, it.word_index) for it in items])
        t_max, d = max(it.keys.shape[0] for it in items), items[0].keys.shape[1]
        keys = torch.zeros(len(items), t_max, d)
        values = torch.zeros(len(items), t_max, d)
        for i, it in enumerate(items):
            keys[i, : it.keys.shape[0]] = it.keys.float()
            values[i, : it.values.shape[0]] = it.values.float()
        streams = [build_stream(it.units.tolist(), it.boundaries, self.mode, self.n_units) for it in items]
        stream = torch.full((len(items), max(len(s) for s in streams)), -1, dtype=torch.long)
        for i, s in enumerate(streams):
            stream[i, : len(s)] = torch.tensor(s)
        n_words = max(it.n_words for it in items)
        word_frames = torch.full((len(items), n_words, 2), -1, dtype=torch.long)
        word_durations = torch.zeros(len(items), n_words)
        for i, it in enumerate(items):
            spans = word_frame_spans(it.word_starts_s, it.word_durations_s, it.keys.shape[0], self.frame_rate_hz)
            word_frames[i, : len(spans)] = torch.tensor(spans, dtype=torch.long)
            word_durations[i, : len(it.word_durations_s)] = torch.tensor(it.word_durations_s, dtype=torch.float32)
        return TasteBatch(
            ids=[it.id for it in items], text=text, keys=keys, values=values,
            frame_lengths=torch.tensor([it.keys.shape[0] for it in items]),
            speaker=torch.stack([it.speaker for it in items]), stream=stream, word_frames=word_frames,
            word_durations=word_durations)


def save_items(path: str | Path, items: Sequence[TasteItem]) -> None:
    """Cache items (encoder states as float16 safetensors + a JSON sidecar), so a parallel process can train on them."""
    import json

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, []
    for it in items:
        tensors[f"{it.id}/keys"], tensors[f"{it.id}/speaker"] = it.keys.contiguous(), it.speaker.contiguous()
        tensors[f"{it.id}/units"] = it.units.contiguous()
        if it.values is not it.keys:
            tensors[f"{it.id}/values"] = it.values.contiguous()
        meta.append({"id": it.id, "text": it.text, "token_ids": it.token_ids, "word_index": it.word_index,
                     "boundaries": it.boundaries, "word_starts_s": it.word_starts_s,
                     "word_durations_s": it.word_durations_s})
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")


def load_items(path: str | Path) -> list[TasteItem]:
    """Inverse of save_items."""
    import json

    path = Path(path)
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise FileNotFoundError(f"{path}: item cache (or its .json sidecar) not found")
    tensors = load_file(str(path))
    items = []
    for m in json.loads(path.with_suffix(".json").read_text(encoding="utf-8")):
        keys = tensors[f"{m['id']}/keys"]
        items.append(TasteItem(
            id=m["id"], text=m["text"], token_ids=tuple(m["token_ids"]), word_index=tuple(m["word_index"]),
            keys=keys, values=tensors.get(f"{m['id']}/values", keys), speaker=tensors[f"{m['id']}/speaker"],
            units=tensors[f"{m['id']}/units"], boundaries=tuple(m["boundaries"]),
            word_starts_s=tuple(m["word_starts_s"]), word_durations_s=tuple(m["word_durations_s"])))
    return items
