"""The pretrained text LM: a small Llama (transformers) trained on the text pool, or a local Llama + LoRA.

The study's stand-in for Llama-3.2-1B. Sequences are ``[bos] sentence-tokens [eos]`` packed into fixed-length
blocks; the same special ids are used by TASLM and the S3-unit LM so the pretrained embeddings carry over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

# Names a tokenizer may already carry for its special tokens (Llama-3 first, then common BPE spellings).
_BOS_NAMES = ("<|begin_of_text|>", "<|startoftranscript|>", "<s>", "<bos>", "<|startoftext|>")
_EOS_NAMES = ("<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>")
_PAD_NAMES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]")


@dataclass(frozen=True)
class LMVocab:
    """Ids of the LM's special tokens; ids the subword tokenizer lacks are appended after its vocabulary."""

    base_size: int
    bos: int
    eos: int
    pad: int

    @property
    def size(self) -> int:
        return max(self.base_size, self.bos + 1, self.eos + 1, self.pad + 1)

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "LMVocab":
        """Reuse the tokenizer's own bos/eos/pad when it has them, else append new ids."""
        base = tokenizer.get_vocab_size(with_added_tokens=True)
        next_id = base
        ids = []
        for names in (_BOS_NAMES, _EOS_NAMES, _PAD_NAMES):
            found = next((tokenizer.token_to_id(n) for n in names if tokenizer.token_to_id(n) is not None), None)
            if found is None:
                found, next_id = next_id, next_id + 1
            ids.append(found)
        return cls(base_size=base, bos=ids[0], eos=ids[1], pad=ids[2])


@dataclass(frozen=True)
class TextLMConfig:
    vocab_size: int = 2003
    d_model: int = 256
    layers: int = 4
    n_heads: int = 4
    ffn_dim: int = 1024
    context: int = 128


def debug_config(vocab_size: int = 64) -> TextLMConfig:
    return TextLMConfig(vocab_size=vocab_size, d_model=32, layers=2, n_heads=2, ffn_dim=64, context=64)


def build_text_lm(config: TextLMConfig, vocab: LMVocab | None = None):
    """A randomly initialised LlamaForCausalLM of the given size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if vocab is not None and vocab.size > config.vocab_size:
        raise ValueError(f"TextLMConfig.vocab_size {config.vocab_size} < tokenizer vocabulary {vocab.size}")
    hf = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ffn_dim,
        num_hidden_layers=config.layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=max(config.context * 4, 512),  # room for continuation beyond the training block
        tie_word_embeddings=False,  # tied weights share storage, which plain safetensors checkpoints refuse
        bos_token_id=vocab.bos if vocab else None,
        eos_token_id=vocab.eos if vocab else None,
        pad_token_id=vocab.pad if vocab else None,
    )
    return LlamaForCausalLM(hf)


def load_pretrained_llama(path: str | Path, dtype: torch.dtype = torch.float32, untie: bool = True):
    """Load a Llama from a LOCAL folder (config.json + safetensors); never touches the network.

    untie: give lm_head its own copy of tied embeddings (Llama-3.2-1B ties them). The outputs are unchanged;
    the study's checkpoints are plain safetensors files, which refuse tensors that share memory.
    """
    from transformers import LlamaForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json -- not a local transformers model folder")
    model = LlamaForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    if untie and model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
        model.config.tie_word_embeddings = False
    return model


def apply_lora(model, r: int = 64, alpha: int = 128, dropout: float = 0.0):
    """Wrap a Llama with peft LoRA adapters on the attention and MLP projections; base weights frozen."""
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    return get_peft_model(model, cfg)


def save_text_lm(model, out_dir: str | Path) -> Path:
    """save_pretrained in safetensors (a peft model saves its adapters only)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def encode_sentence(tokenizer, text: str, vocab: LMVocab) -> list[int]:
    """``[bos] tokens [eos]`` for one normalised sentence."""
    return [vocab.bos, *tokenizer.encode(text).ids, vocab.eos]


def read_text_pool(path: str | Path) -> list[list[str]]:
    """Stories of the text pool: one sentence a line, a blank line between stories."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text pool missing (run `taste materialise`)")
    stories, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            stories.append(current)
            current = []
    if current:
        stories.append(current)
    if not stories:
        raise ValueError(f"{path}: text pool is empty")
    return stories


def split_stories(stories: Sequence[Sequence[str]], heldout_share: float = 0.02, seed: int = 0):
    """Deterministic train / held-out split by whole stories (held-out perplexity is on unseen stories)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(stories), generator=g).tolist()
    n_held = max(1, int(round(len(stories) * heldout_share)))
    held = [stories[i] for i in sorted(order[:n_held])]
    train = [stories[i] for i in sorted(order[n_held:])]
    return train, held


class PackedTextDataset(Dataset):
    """Sentences ``[bos] ... [eos]`` concatenated story by story and cut into blocks of ``context`` tokens."""

    def __init__(self, tokenizer, stories: Iterable[Sequence[str]], vocab: LMVocab, context: int):
        stream: list[int] = []
        for story in stories:
            for sentence in story:
                stream.extend(encode_sentence(tokenizer, sentence, vocab))
        n_blocks = len(stream) // context
        if n_blocks == 0:
            raise ValueError(f"text too short for one block of {context} tokens ({len(stream)} tokens)")
        self.blocks = torch.tensor(stream[: n_blocks * context], dtype=torch.long).view(n_blocks, context)
        self.n_tokens = len(stream)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.blocks[i]


def collate_blocks(items: list[Tensor]) -> dict[str, Tensor]:
    """items: list of LongTensor[T] -> {'input_ids': [B, T]}."""
    return {"input_ids": torch.stack(items)}


def text_lm_loss(model, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Next-token cross-entropy over packed blocks (training loss_fn for taste.training.train)."""
    ids = batch["input_ids"]
    out = model(input_ids=ids, labels=ids)
    return out.loss, {"ce": float(out.loss.detach())}


@torch.no_grad()
def perplexity(model, dataset: PackedTextDataset, batch_size: int = 16, max_blocks: int | None = None) -> float:
    """exp(mean next-token cross-entropy) over the dataset's blocks."""
    model.eval()
    n = len(dataset) if max_blocks is None else min(len(dataset), max_blocks)
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        ids = dataset.blocks[start : min(n, start + batch_size)]
        logits = model(input_ids=ids).logits[:, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
        total += float(ce)
        count += ids[:, 1:].numel()
    return math.exp(total / max(count, 1))
