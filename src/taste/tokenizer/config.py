"""Configuration of the TASTE tokenizer: aggregator, residual VQ and unit decoder (frozen, JSON-serialisable)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONDITIONING_MODES = ("word_sync", "prefix")
BOUNDARY_RULES = ("median", "sample")
DURATION_FEATURES = ("none", "attention_width", "frame_count", "monotonic_count")


class TokenizerConfigError(ValueError):
    """A tokenizer config file or value is malformed."""


@dataclass(frozen=True)
class AggregatorConfig:
    """Whisper-decoder-style text-aligned cross-attention (queries = subword tokens)."""

    vocab_size: int = 2000        # BPE vocabulary (must match the ASR decoder's embedding)
    d_model: int = 192            # = the speech encoder's width (K and V come from it)
    layers: int = 2
    n_heads: int = 4
    ffn_dim: int = 768
    max_tokens: int = 128         # learned token positions (copied from the ASR decoder)
    value_layer: int = 1          # encoder layer whose states are the cross-attention VALUES
    key_layer: int = -1           # last layer, after the final LayerNorm
    duration_feature: str = "none"  # "attention_width": add an embedding of each word's last-layer cross-attention
                                  # width (entropy ~ log frames) to its vector before the RVQ (issue 13);
                                  # "frame_count": of the log number of frames the attention assigns to the word
                                  # (aggregator.word_frame_counts); "monotonic_count": of its frames in the best
                                  # monotonic segmentation of the frames into the words
                                  # (aggregator.word_monotonic_counts); "none" = off

    def __post_init__(self) -> None:
        if self.duration_feature not in DURATION_FEATURES:
            raise TokenizerConfigError(f"aggregator duration_feature must be one of {DURATION_FEATURES}, "
                                       f"got {self.duration_feature!r}")


@dataclass(frozen=True)
class RVQConfig:
    """Residual VQ over word vectors (vector-quantize-pytorch ResidualVQ)."""

    n_quantizers: int = 4
    codebook_size: int = 512
    codebook_dim: int = 64
    decay: float = 0.99
    kmeans_init: bool = True
    quantizer_dropout: bool = True
    commitment_weight: float = 1.0
    dead_code_threshold: float = 0.05  # restart codes whose EMA usage per step falls below this (METHOD.md 6:
                                       # level 2 collapsed); relative to words per batch / codebook size


@dataclass(frozen=True)
class DecoderConfig:
    """CosyVoice-LM-shaped unit decoder at CPU size."""

    n_units: int = 512            # S3-style unit vocabulary (units.codebook_size)
    d_model: int = 192
    layers: int = 4
    n_heads: int = 4
    branch_layers: int = 1        # layers of the text and the TASTE branch encoders
    speaker_dim: int = 256
    max_len: int = 1024            # positions of the causal decoder (units + boundaries + prefix)
    max_word_units: int = 64      # in-word position embedding size; also a per-word cap when decoding
    max_words: int = 64           # word-position embeddings
    max_tokens: int = 128         # subword positions of the text branch
    top_k: int = 25
    boundary: str = "median"      # word_sync: end a word at the median of the decoder's own duration distribution
                                  # ("median") or sample the end token like any unit ("sample")
    min_len_ratio: float = 2.0    # prefix mode: units per word bounds at inference
    max_len_ratio: float = 20.0
    dropout: float = 0.1
    taste_context: str = "sentence"  # "sentence": a Transformer over every word's TASTE vector feeds each word;
                                  # "word": each word's units see only its own TASTE vector (a per-word MLP), so
                                  # no other word's token can change them (issue 13, mechanism 1)
    length_head: bool = False     # word_sync: at each word's boundary a head predicts the word's unit count from the
                                  # decoder state (which holds the word's own vector); the word then gets that many
                                  # units, each told how many remain (issue 13: one duration decision per word, made
                                  # from its token, instead of a per-step end hazard). False = the end-token rule

    def __post_init__(self) -> None:
        if self.taste_context not in ("sentence", "word"):
            raise ValueError(f"decoder taste_context must be 'sentence' or 'word', got {self.taste_context!r}")


@dataclass(frozen=True)
class TasteConfig:
    """The whole tokenizer."""

    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    rvq: RVQConfig = field(default_factory=RVQConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    conditioning: str = "word_sync"
    unit_rate_hz: float = 25.0
    encoder_rate_hz: float = 50.0       # Whisper encoder frames/s (100 mel frames/s, stride 2)
    max_encoder_frames: int = 500       # 2 x max_source_positions of the encoder: longer audio is rejected

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONING_MODES:
            raise TokenizerConfigError(f"conditioning must be one of {CONDITIONING_MODES}, got {self.conditioning!r}")
        if self.decoder.length_head and self.conditioning != "word_sync":
            raise TokenizerConfigError("decoder.length_head needs conditioning word_sync (prefix mode has no words)")
        if self.decoder.boundary not in BOUNDARY_RULES:
            raise TokenizerConfigError(f"decoder.boundary must be one of {BOUNDARY_RULES}, got {self.decoder.boundary!r}")

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TasteConfig":
        try:
            return cls(
                aggregator=AggregatorConfig(**data.get("aggregator", {})),
                rvq=RVQConfig(**data.get("rvq", {})),
                decoder=DecoderConfig(**data.get("decoder", {})),
                **{k: v for k, v in data.items() if k not in ("aggregator", "rvq", "decoder")},
            )
        except TypeError as exc:
            raise TokenizerConfigError(f"bad tokenizer config: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> "TasteConfig":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: tokenizer config not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TokenizerConfigError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def debug_config(conditioning: str = "word_sync", vocab_size: int = 50, n_units: int = 32) -> TasteConfig:
    """2-layer, 16-32-dim tokenizer for tests."""
    return TasteConfig(
        aggregator=AggregatorConfig(vocab_size=vocab_size, d_model=16, layers=2, n_heads=2, ffn_dim=32,
                                    max_tokens=64, value_layer=1),
        rvq=RVQConfig(n_quantizers=4, codebook_size=16, codebook_dim=8, kmeans_init=False),
        decoder=DecoderConfig(n_units=n_units, d_model=32, layers=2, n_heads=2, branch_layers=1, speaker_dim=256,
                              max_len=256, max_word_units=16, max_words=32, max_tokens=64, top_k=5, dropout=0.0),
        conditioning=conditioning,
        max_encoder_frames=200,
    )


def config_from_params(params: dict[str, Any], asr_config: Any, *, conditioning: str | None = None,
                       value_layer: int | None = None, duration_feature: str | None = None) -> TasteConfig:
    """Build a TasteConfig from params.yaml (entry points only); the aggregator's shape is read off the
    trained Whisper's config (transformers WhisperConfig), so its decoder weights can initialise it."""
    tp, rv, dec = params["tokenizer"], params["tokenizer"]["rvq"], params["tokenizer"]["decoder"]
    return TasteConfig(
        aggregator=AggregatorConfig(
            vocab_size=asr_config.vocab_size, d_model=asr_config.d_model, layers=tp["aggregator_layers"],
            n_heads=asr_config.decoder_attention_heads, ffn_dim=asr_config.decoder_ffn_dim,
            max_tokens=asr_config.max_target_positions,
            value_layer=tp["value_layer"] if value_layer is None else value_layer,
            duration_feature=tp["duration_feature"] if duration_feature is None else duration_feature),
        rvq=RVQConfig(n_quantizers=rv["n_quantizers"], codebook_size=rv["codebook_size"], codebook_dim=rv["codebook_dim"],
                      decay=rv["decay"], kmeans_init=rv["kmeans_init"], quantizer_dropout=rv["quantizer_dropout"],
                      commitment_weight=rv["commitment_weight"], dead_code_threshold=rv["dead_code_threshold"]),
        decoder=DecoderConfig(n_units=params["units"]["codebook_size"], d_model=dec["d_model"], layers=dec["layers"],
                              n_heads=dec["n_heads"], top_k=dec["top_k"], boundary=dec["boundary"],
                              min_len_ratio=dec["min_len_ratio"],
                              max_len_ratio=dec["max_len_ratio"], max_tokens=asr_config.max_target_positions,
                              max_word_units=int(round(2.56 * params["units"]["rate_hz"])),  # 2.56 s per word
                              taste_context=dec["taste_context"],
                              # the head places word ends: a prefix-mode model (the ablation) has none to place
                              length_head=bool(dec["length_head"]) and (conditioning or tp["conditioning"]) == "word_sync"),
        conditioning=conditioning or tp["conditioning"],
        unit_rate_hz=float(params["units"]["rate_hz"]),
        max_encoder_frames=2 * asr_config.max_source_positions,
    )
