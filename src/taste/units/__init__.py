"""S3-style supervised speech units: a CTC-trained encoder with a vector-quantised bottleneck (stage 02a)."""

from taste.units.model import UnitTokenizer, UnitTokenizerConfig, build_debug_unit_tokenizer, debug_config

__all__ = ["UnitTokenizer", "UnitTokenizerConfig", "build_debug_unit_tokenizer", "debug_config"]
