"""Units (+ speaker embedding) -> log-mel + F0 -> source-filter (or Griffin-Lim) waveform (stage 02b)."""

from taste.vocoder.model import UnitVocoder, VocoderConfig, build_debug_vocoder, debug_config

__all__ = ["UnitVocoder", "VocoderConfig", "build_debug_vocoder", "debug_config"]
