"""TasteTokenizer: frozen Whisper encoder -> text-aligned aggregator -> residual VQ -> unit decoder.

`stage` says what the model was trained to use: "text_only" (decoder without the TASTE branch), "no_vq"
(continuous word vectors) or "rvq" (quantised word codes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from taste.tokenizer.aggregator import Aggregator
from taste.tokenizer.config import TasteConfig
from taste.tokenizer.quantizer import WordQuantizer
from taste.tokenizer.streams import parse_stream
from taste.tokenizer.unit_decoder import UnitDecoder
from taste.training.saved_model import CONFIG_FILE, WEIGHTS_FILE, SavedModel  # noqa: F401 (re-exported)

STAGES = ("text_only", "no_vq", "rvq")
ASR_DIR = "speech_encoder"  # the frozen Whisper (saved with taste.asr.whisper.save_asr) and its BPE tokenizer


class TokenizerInputError(ValueError):
    """Input the tokenizer cannot use: no words, audio too long, codes that do not match the transcript."""


@dataclass
class WordCodes:
    """codes: Long[N_words, n_q]; vectors: Tensor[N_words, D] (the quantised vectors; continuous in stage no_vq)."""

    codes: Tensor
    vectors: Tensor


@dataclass
class DecodeResult:
    """units: Long[U]; word_boundaries: unit index where each word starts; word_durations_s from generated boundaries."""

    units: Tensor
    word_boundaries: list[int]
    word_units: list[int]
    word_durations_s: list[float]
    stream: list[int] = field(default_factory=list)


@dataclass
class TextBatch:
    """Padded subword batch: token_ids, word_index Long[B, L] (-1 = pad); n_words Long[B]."""

    token_ids: Tensor
    word_index: Tensor
    n_words: Tensor


def pad_text(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> TextBatch:
    """[(token ids, word index per token)] -> TextBatch."""
    length = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), length), -1, dtype=torch.long)
    words = torch.full((len(pairs), length), -1, dtype=torch.long)
    for i, (t, w) in enumerate(pairs):
        ids[i, : len(t)] = torch.as_tensor(t, dtype=torch.long)
        words[i, : len(w)] = torch.as_tensor(w, dtype=torch.long)
    return TextBatch(ids, words, words.max(dim=1).values + 1)


class TasteTokenizer(SavedModel, nn.Module):
    """Speech + transcript -> one code tuple per word -> units. The frozen Whisper (`asr`, whose encoder is
    the speech encoder) is kept outside the module's parameters: it is never trained and is saved apart."""

    saved_name = "TasteTokenizer"

    def __init__(self, cfg: TasteConfig, asr: nn.Module | None = None, bpe=None, stage: str = "rvq") -> None:
        super().__init__()
        self.cfg = cfg
        self.aggregator = Aggregator(cfg.aggregator)
        self.quantizer = WordQuantizer(cfg.rvq, cfg.aggregator.d_model)
        self.decoder = UnitDecoder(cfg.decoder, cfg.conditioning, cfg.aggregator.vocab_size, cfg.aggregator.d_model)
        self._frozen = {"asr": asr, "bpe": bpe}
        self.set_stage(stage)

    @classmethod
    def from_asr(cls, cfg: TasteConfig, asr: nn.Module, bpe, stage: str = "text_only") -> "TasteTokenizer":
        """A fresh tokenizer around a trained Whisper: the aggregator starts from its decoder (v_proj = identity)."""
        model = cls(cfg, asr=asr, bpe=bpe, stage=stage)
        model.aggregator.load_whisper_decoder(asr.model.decoder)
        return model

    def set_stage(self, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage

    @property
    def asr(self) -> nn.Module:
        if self._frozen["asr"] is None:
            raise RuntimeError("this TasteTokenizer has no speech encoder attached")
        return self._frozen["asr"]

    @property
    def bpe(self):
        if self._frozen["bpe"] is None:
            raise RuntimeError("this TasteTokenizer has no subword tokenizer attached")
        return self._frozen["bpe"]

    # -- text and speech inputs --------------------------------------------------------------------
    def tokenize(self, transcripts: Sequence[str]) -> TextBatch:
        from taste.asr.bpe import word_ids

        pairs = []
        for text in transcripts:
            if not text.split():
                raise TokenizerInputError(f"transcript has no words: {text!r}")
            pairs.append(word_ids(self.bpe, text))
        return pad_text(pairs)

    @torch.no_grad()
    def encoder_states(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """mel: [B, n_mels, F] (padded), lengths: Long[B] in mel frames.
        Returns (keys [B, T, D] = last layer after final LN, values [B, T, D] = layer value_layer, frame_lengths Long[B])."""
        from taste.asr.modeling import encoder_lengths
        from taste.asr.whisper import encoder_states

        window = 2 * int(self.asr.config.max_source_positions)
        if int(lengths.max()) > window:
            raise TokenizerInputError(f"audio of {int(lengths.max())} mel frames ({int(lengths.max()) / 100:.2f} s) is "
                                      f"longer than the speech encoder's window of {window} frames")
        value_layer = self.cfg.aggregator.value_layer
        states = encoder_states(self.asr, mel, lengths, layers=(value_layer, -1))
        return states[-1], states[value_layer], encoder_lengths(lengths)

    # -- word vectors ------------------------------------------------------------------------------
    def word_vectors(self, text: TextBatch, keys: Tensor, values: Tensor, frame_lengths: Tensor,
                     return_attention: bool = False) -> tuple[Tensor, ...]:
        """Continuous aggregator output: ([B, N, D], word_mask [B, N]), plus the last layer's cross-attention
        [B, L, T] when return_attention."""
        return self.aggregator(text.token_ids, text.word_index, text.n_words, keys, values, frame_lengths,
                               return_attention=return_attention)

    def taste_inputs(self, text: TextBatch, keys: Tensor, values: Tensor, frame_lengths: Tensor,
                     return_attention: bool = False) -> tuple[Tensor | None, ...]:
        """What the decoder's TASTE branch sees at this stage: (vectors | None, codes | None, commitment loss),
        plus the aggregator's last cross-attention [B, L, T] (None for text-only) when return_attention."""
        zero = keys.new_zeros(())
        if self.stage == "text_only":
            return (None, None, zero, None) if return_attention else (None, None, zero)
        out = self.word_vectors(text, keys, values, frame_lengths, return_attention=return_attention)
        vectors, mask = out[0], out[1]
        extra = (out[2],) if return_attention else ()
        if self.stage == "no_vq":
            return (vectors, None, zero, *extra)
        quantized, codes, commit = self.quantizer(vectors, mask)
        return (quantized, codes, commit, *extra)

    def codes_to_vectors(self, codes: Tensor, n_layers: int | None = None) -> Tensor:
        """codes: Long[N, k] -> Tensor[N, D] (sum of the first n_layers codebooks, projected back)."""
        return self.quantizer.codes_to_vectors(codes, n_layers)

    def quantize(self, vectors: Tensor) -> Tensor:
        """vectors: Tensor[N, D] -> Long[N, n_q] (nearest codes, codebooks untouched)."""
        return self.quantizer.quantize(vectors)

    # -- public API ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, mel: Tensor, transcript: str) -> WordCodes:
        """mel: Tensor[n_mels, F] of one utterance; transcript with N words -> WordCodes (codes [N, n_q], vectors [N, D])."""
        if self.stage == "text_only":
            raise RuntimeError("a text-only model has no TASTE branch to encode with")
        self.eval()
        text = self.tokenize([transcript])
        keys, values, frames = self.encoder_states(mel.unsqueeze(0).float(), torch.tensor([mel.shape[-1]]))
        vectors, _ = self.word_vectors(text, keys, values, frames)
        vectors = vectors[0]
        if self.stage == "no_vq":
            return WordCodes(torch.zeros(vectors.shape[0], 0, dtype=torch.long), vectors)
        codes = self.quantize(vectors)
        return WordCodes(codes, self.codes_to_vectors(codes))

    @torch.no_grad()
    def decode(self, transcript: str, codes: Tensor | None, speaker: Tensor, seed: int = 0,
               n_layers: int | None = None) -> DecodeResult:
        """codes: Long[N_words, k] (None for a text-only model); speaker: Tensor[speaker_dim] -> DecodeResult."""
        n_words = len(transcript.split())
        if codes is not None and codes.shape[0] != n_words:
            raise TokenizerInputError(f"codes cover {codes.shape[0]} words but the transcript has {n_words}")
        vectors = None if codes is None else [self.codes_to_vectors(codes, n_layers)]
        return self.decode_batch([transcript], vectors, speaker.unsqueeze(0), seed=seed)[0]

    @torch.no_grad()
    def decode_batch(self, transcripts: Sequence[str], vectors: Sequence[Tensor] | None, speakers: Tensor,
                     seed: int | Sequence[int] = 0, top_k: int | None = None, boundary: str | None = None
                     ) -> list[DecodeResult]:
        """Batched sampling. vectors: per utterance Tensor[N_i, D] (None = text-only); speakers: [B, speaker_dim].
        boundary: word-end rule ("median" | "sample"; default the config's, see unit_decoder.end_of_word_choice)."""
        self.eval()
        text = self.tokenize(transcripts)
        taste = None
        if vectors is not None:
            for t, v in zip(transcripts, vectors):
                if v.shape[0] != len(t.split()):
                    raise TokenizerInputError(f"{v.shape[0]} word vectors for {len(t.split())} words in {t!r}")
            taste = torch.zeros(len(vectors), int(text.n_words.max()), self.cfg.aggregator.d_model)
            for i, v in enumerate(vectors):
                taste[i, : v.shape[0]] = v
        fused, mask = self.decoder.condition(text.token_ids, text.word_index, text.n_words, taste)
        streams = self.decoder.generate(fused, mask, speakers.float(), seed=seed, top_k=top_k, boundary=boundary)
        return [self._result(s) for s in streams]

    def _result(self, stream: list[int]) -> DecodeResult:
        units, counts = parse_stream(stream, self.cfg.decoder.n_units)
        bounds = [sum(counts[:j]) for j in range(len(counts))]
        rate = self.cfg.unit_rate_hz
        return DecodeResult(torch.tensor(units, dtype=torch.long), bounds, counts, [c / rate for c in counts], stream)

    # -- persistence (taste.training.saved_model.SavedModel: config.json + model.safetensors) -------------------
    def config_payload(self) -> dict:
        data = json.loads(json.dumps(self.cfg, default=lambda o: o.__dict__))
        data["stage"] = self.stage
        return data

    def save_pretrained(self, directory: str | Path) -> Path:
        """config.json + model.safetensors (+ the speech encoder and subword tokenizer when attached)."""
        out = super().save_pretrained(directory)
        if self._frozen["asr"] is not None:
            from taste.asr.whisper import save_asr

            save_asr(self.asr, self.bpe, out / ASR_DIR)
        return out

    @classmethod
    def from_payload(cls, payload: dict, directory: Path) -> "TasteTokenizer":
        data = dict(payload)
        stage = data.pop("stage", "rvq")
        asr = bpe = None
        if (directory / ASR_DIR).is_dir():
            from taste.asr.bpe import load_bpe
            from taste.asr.whisper import load_asr

            asr, bpe = load_asr(directory / ASR_DIR), load_bpe(directory / ASR_DIR)
        return cls(TasteConfig.from_dict(data), asr=asr, bpe=bpe, stage=stage)
