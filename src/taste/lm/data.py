"""Training examples for TASLM (tokens + delayed word codes) and for the S3-unit LM (units + padded text)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from taste.lm.patterns import IGNORE, delay_codes
from taste.lm.text_lm import LMVocab


def load_code_table(path: str | Path) -> dict[str, Tensor]:
    """data/taste_codes/{split}.safetensors or data/units/{split}.safetensors: utterance id -> int16 tensor."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: code table missing (run the stage that writes it)")
    return {k: v.long() for k, v in load_file(str(path)).items()}


def token_stream(tokenizer, text: str, vocab: LMVocab, word_ids_fn: Callable) -> tuple[list[int], list[int]]:
    """``[bos] tokens [eos]`` and their word indices (-1 for bos, N_words for eos)."""
    ids, word_index = word_ids_fn(tokenizer, text)
    n_words = len(text.split())
    return [vocab.bos, *ids, vocab.eos], [-1, *word_index, n_words]


@dataclass(frozen=True)
class TASLMExample:
    input_ids: Tensor  # [T]
    taste_vectors: Tensor  # [T, D] (zeros where no word's codes are known yet)
    has_taste: Tensor  # Bool[T]
    target_codes: Tensor  # [T, n_q], IGNORE off word starts
    target_vectors: Tensor  # [T, D]


def build_taslm_example(ids: Sequence[int], word_index: Sequence[int], codes: Tensor, vectors: Tensor, delay: int = 1):
    """codes: [N, n_q]; vectors: [N, D] = codes_to_vectors(codes). Places both with the delay pattern."""
    n = codes.shape[0]
    pattern = delay_codes(word_index, codes, delay)
    # The same pattern over word numbers tells which word's vector sits (or is predicted) at each position.
    where = delay_codes(word_index, torch.arange(n).unsqueeze(1), delay)
    src_in, src_tgt = where.input_codes[:, 0], where.target_codes[:, 0]
    zeros = torch.zeros(len(ids), vectors.shape[1], dtype=torch.float32)
    vin = torch.where((src_in >= 0).unsqueeze(1), vectors[src_in.clamp(min=0)].float(), zeros)
    vtgt = torch.where((src_tgt >= 0).unsqueeze(1), vectors[src_tgt.clamp(min=0)].float(), zeros)
    return TASLMExample(torch.tensor(ids, dtype=torch.long), vin, pattern.has_input, pattern.target_codes, vtgt)


class TASLMDataset(Dataset):
    """One example per utterance: its transcript's tokens and its words' TASTE codes (delay-1 pattern)."""

    def __init__(self, utterances, codes: dict[str, Tensor], tokenizer, vocab: LMVocab, codes_to_vectors: Callable,
                 word_ids_fn: Callable, max_len: int = 128, delay: int = 1):
        self.examples: list[TASLMExample] = []
        for utt in utterances:
            if utt.id not in codes:
                raise ValueError(f"utterance {utt.id}: no TASTE codes in the code table")
            c = codes[utt.id]
            if c.shape[0] != len(utt.text.split()):
                raise ValueError(f"utterance {utt.id}: {c.shape[0]} code rows for {len(utt.text.split())} words")
            ids, wi = token_stream(tokenizer, utt.text, vocab, word_ids_fn)
            with torch.no_grad():
                vectors = codes_to_vectors(c).float()
            self.examples.append(build_taslm_example(ids[:max_len], wi[:max_len], c, vectors, delay))
        if not self.examples:
            raise ValueError("TASLMDataset: no utterances")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> TASLMExample:
        return self.examples[i]


def _pad(seqs: list[Tensor], value) -> Tensor:
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def collate_taslm(items: list[TASLMExample], pad_id: int) -> dict[str, Tensor]:
    """Right-padded batch; next_ids[b, t] = input_ids[b, t+1] (IGNORE at the end and on padding)."""
    ids = _pad([x.input_ids for x in items], pad_id)
    lengths = torch.tensor([len(x.input_ids) for x in items])
    attention = torch.arange(ids.shape[1])[None] < lengths[:, None]
    next_ids = torch.full_like(ids, IGNORE)
    next_ids[:, :-1] = ids[:, 1:].masked_fill(~attention[:, 1:], IGNORE)
    target_codes = _pad([x.target_codes for x in items], IGNORE)
    return {
        "input_ids": ids,
        "attention_mask": attention.long(),
        "next_ids": next_ids,
        "taste_vectors": _pad([x.taste_vectors for x in items], 0.0),
        "has_taste": _pad([x.has_taste for x in items], False),
        "target_codes": target_codes,
        "target_vectors": _pad([x.target_vectors for x in items], 0.0),
        "has_target": target_codes[..., 0] != IGNORE,
    }


@dataclass(frozen=True)
class S3Example:
    unit_ids: Tensor  # [L] = [unit_bos, units..., unit_eos]
    text_ids: Tensor  # [L] = [bos, tokens..., eos, pad...] padded (or cut) to the unit length


class S3Dataset(Dataset):
    """The S3-unit LM's examples: the 25 Hz unit stream with the transcript's tokens padded to its length."""

    def __init__(self, utterances, units: dict[str, Tensor], tokenizer, vocab: LMVocab, n_units: int,
                 max_len: int = 400):
        self.examples: list[S3Example] = []
        for utt in utterances:
            if utt.id not in units:
                raise ValueError(f"utterance {utt.id}: no units in the unit table")
            u = units[utt.id]
            if u.numel() and int(u.max()) >= n_units:
                raise ValueError(f"utterance {utt.id}: unit id {int(u.max())} >= n_units {n_units}")
            self.examples.append(s3_example(tokenizer.encode(utt.text).ids, u, vocab, n_units, max_len))
        if not self.examples:
            raise ValueError("S3Dataset: no utterances")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> S3Example:
        return self.examples[i]


def s3_example(token_ids: Sequence[int], units: Tensor, vocab: LMVocab, n_units: int, max_len: int) -> S3Example:
    unit_ids = torch.cat([torch.tensor([n_units]), units.long(), torch.tensor([n_units + 1])])[:max_len]
    text = torch.tensor([vocab.bos, *token_ids, vocab.eos], dtype=torch.long)[: len(unit_ids)]
    text = torch.cat([text, torch.full((len(unit_ids) - len(text),), vocab.pad, dtype=torch.long)])
    return S3Example(unit_ids, text)


def collate_s3(items: list[S3Example], pad_id: int, n_units: int) -> dict[str, Tensor]:
    units = _pad([x.unit_ids for x in items], n_units + 1)
    text = _pad([x.text_ids for x in items], pad_id)
    lengths = torch.tensor([len(x.unit_ids) for x in items])
    attention = torch.arange(units.shape[1])[None] < lengths[:, None]
    next_units = torch.full_like(units, IGNORE)
    next_units[:, :-1] = units[:, 1:].masked_fill(~attention[:, 1:], IGNORE)
    next_text = torch.full_like(text, IGNORE)
    next_text[:, :-1] = text[:, 1:].masked_fill(~attention[:, 1:], IGNORE)
    return {"unit_ids": units, "text_ids": text, "attention_mask": attention.long(),
            "next_units": next_units, "next_text": next_text}
