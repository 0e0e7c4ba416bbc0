"""The study's Whisper: build, save/load, encoder states for TASTE, and batched greedy transcription.

The same functions serve the small from-scratch model (default) and a pretrained Whisper loaded from a local
folder (paper profile: distil-whisper large-v3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import WhisperConfig

from taste.asr.bpe import EOT, PAD, SOT, decode_text, load_bpe, save_bpe, special_id
from taste.asr.features import check_batch, prepare_features
from taste.asr.modeling import AsrWhisper, encoder_lengths
from taste.data.text_norm import normalise

WHISPER_PROMPT = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")


@dataclass(frozen=True)
class AsrConfig:
    """Size of the from-scratch Whisper. `max_seconds` sizes the encoder window (100 mel frames per second)."""

    n_mels: int = 80
    d_model: int = 192
    encoder_layers: int = 4
    decoder_layers: int = 2
    n_heads: int = 4
    ffn_dim: int = 768
    max_seconds: float = 10.0
    max_target_positions: int = 128
    dropout: float = 0.0

    @property
    def max_source_positions(self) -> int:
        """Encoder states in the window: frames / 2 (stride-2 conv)."""
        return math.ceil(self.max_seconds * 100 / 2)


def debug_config() -> AsrConfig:
    """A 2-layer, 32-dim Whisper that builds in milliseconds (tests)."""
    return AsrConfig(d_model=32, encoder_layers=2, decoder_layers=2, n_heads=2, ffn_dim=64, max_seconds=2.0,
                     max_target_positions=48)


def whisper_config(cfg: AsrConfig, tok: Tokenizer) -> WhisperConfig:
    """transformers' WhisperConfig for `cfg` with the BPE tokenizer's special ids."""
    pad, sot, eot = special_id(tok, PAD), special_id(tok, SOT), special_id(tok, EOT)
    return WhisperConfig(
        vocab_size=tok.get_vocab_size(), num_mel_bins=cfg.n_mels, d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.n_heads, decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.ffn_dim, decoder_ffn_dim=cfg.ffn_dim,
        max_source_positions=cfg.max_source_positions, max_target_positions=cfg.max_target_positions,
        dropout=cfg.dropout, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=pad, bos_token_id=sot, eos_token_id=eot, decoder_start_token_id=sot,
        begin_suppress_tokens=None, suppress_tokens=None,
        # untied: the training loop's safetensors checkpoints refuse shared tensors
        tie_word_embeddings=False,
        pad_to_window=False, asr_prompt=[sot],
    )


def build_asr(cfg: AsrConfig, tok: Tokenizer, seed: int = 0) -> AsrWhisper:
    """A randomly initialised length-aware Whisper for `tok`'s vocabulary."""
    torch.manual_seed(seed)
    return AsrWhisper(whisper_config(cfg, tok)).eval()


def save_asr(model: AsrWhisper, tok: Tokenizer, directory: str | Path) -> Path:
    """`save_pretrained` (config.json + model.safetensors) and tokenizer.json into `directory`."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    save_bpe(tok, directory)
    return directory


def load_asr(directory: str | Path) -> AsrWhisper:
    """Load a model saved by `save_asr` (local files only), in eval mode."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a saved ASR model)")
    return AsrWhisper.from_pretrained(directory, local_files_only=True).eval()


def load_pretrained_whisper(path: str | Path) -> tuple[AsrWhisper, Tokenizer]:
    """A pretrained Whisper (e.g. distil-whisper large-v3) from a LOCAL folder, with its tokenizer.json.

    It was trained on full 30 s windows, so inputs are padded to the window (`pad_to_window`); decoding starts
    from Whisper's English-transcription prompt when the tokenizer has those tokens.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json (expected a local Whisper folder)")
    model = AsrWhisper.from_pretrained(path, local_files_only=True).eval()
    tok = load_bpe(path)
    prompt = [tok.token_to_id(t) for t in WHISPER_PROMPT]
    model.config.pad_to_window = True
    model.config.asr_prompt = prompt if all(p is not None for p in prompt) else [model.config.decoder_start_token_id]
    return model, tok


def _inputs(model: AsrWhisper, mels: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    window = 2 * cfg.max_source_positions
    lengths = check_batch(mels, lengths, cfg.num_mel_bins, window)
    feats, mask = prepare_features(mels, lengths, window, getattr(cfg, "pad_to_window", False))
    return feats, mask, lengths


@torch.no_grad()
def encoder_states(
    model: AsrWhisper, mels: torch.Tensor, lengths: torch.Tensor | None = None, layers: Sequence[int] = (-1,)
) -> dict[int, torch.Tensor]:
    """Hidden states of the requested encoder layers, zero beyond each utterance's length.

    mels: Tensor[B, n_mels, F] natural-log mel (zero padded), lengths: Long[B] frames (None = all F).
    Layer 0 = embeddings (conv + positions), i = output of encoder layer i, N and -1 = last layer after the
    final LayerNorm (transformers' hidden_states convention). Returns {layer: Tensor[B, ceil(max len / 2), D]};
    valid lengths are `modeling.encoder_lengths(lengths)`.
    """
    feats, mask, lengths = _inputs(model, mels, lengths)
    states = model.encode(feats, mask, output_hidden_states=True).hidden_states
    n_states = int(encoder_lengths(lengths).max())
    valid = (torch.arange(n_states)[None, :] < encoder_lengths(lengths)[:, None])[..., None]
    out = {}
    for layer in layers:
        if not -len(states) <= layer < len(states):
            raise IndexError(f"encoder layer {layer} out of range: the encoder has {len(states) - 1} layers")
        out[layer] = (states[layer][:, :n_states] * valid).contiguous()
    return out


@torch.no_grad()
def greedy_decode(model: AsrWhisper, mels: torch.Tensor, lengths: torch.Tensor | None = None,
                  max_new_tokens: int | None = None) -> list[list[int]]:
    """Batched, KV-cached greedy decoding; returns each utterance's token ids (prompt and EOT removed).

    At most `max_new_tokens` per utterance (default: 16 + 10 per second of its input)."""
    feats, mask, lengths = _inputs(model, mels, lengths)
    cfg = model.config
    enc = model.encode(feats, mask).last_hidden_state
    enc_mask = mask[:, ::2]
    prompt = list(getattr(cfg, "asr_prompt", None) or [cfg.decoder_start_token_id])
    limit = cfg.max_target_positions - len(prompt)
    if max_new_tokens is None:  # speech carries ~4 subwords/s; 10/s + 16 bounds a model that never stops
        caps = (16 + lengths // 10).clamp(max=limit)  # per utterance, so batching changes nothing
    else:
        caps = torch.full((feats.shape[0],), min(limit, max_new_tokens), dtype=torch.long)
    steps = int(caps.max())
    batch = feats.shape[0]
    tokens = torch.tensor([prompt] * batch, dtype=torch.long)
    out = torch.empty(batch, 0, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    cache = None
    for _ in range(steps):
        dec = model.model.decoder(tokens, enc, encoder_attention_mask=enc_mask, cache=cache, use_cache=True)
        cache = dec.cache
        nxt = model.proj_out(dec.last_hidden_state[:, -1]).argmax(-1)
        nxt = nxt.masked_fill(finished, cfg.eos_token_id)
        out = torch.cat([out, nxt[:, None]], dim=1)
        finished |= (nxt == cfg.eos_token_id) | (out.shape[1] >= caps)
        if bool(finished.all()):
            break
        tokens = nxt[:, None]
    return [row.tolist()[: min(_first(row.tolist(), cfg.eos_token_id), int(cap))] for row, cap in zip(out, caps)]


def _first(seq: list[int], value: int) -> int:
    return seq.index(value) if value in seq else len(seq)


def transcribe(model: AsrWhisper, tok: Tokenizer, mels: torch.Tensor, lengths: torch.Tensor | None = None,
               batch_size: int = 32) -> list[str]:
    """Greedy transcripts (normalised text) of mels: Tensor[B, n_mels, F] with lengths: Long[B] (None = all F)."""
    if mels.ndim == 3 and lengths is None:
        lengths = torch.full((mels.shape[0],), mels.shape[-1], dtype=torch.long)
    check_batch(mels, lengths, model.config.num_mel_bins, 2 * model.config.max_source_positions)
    texts: list[str] = []
    for start in range(0, mels.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        n = int(lengths[sl].max())
        for ids in greedy_decode(model, mels[sl, :, :n], lengths[sl]):
            texts.append(normalise(decode_text(tok, ids)))
    return texts
