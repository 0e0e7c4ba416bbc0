"""TASTE: text-aligned speech tokenization (aggregator + residual VQ + unit decoder)."""

from taste.tokenizer.config import (AggregatorConfig, DecoderConfig, RVQConfig, TasteConfig, TokenizerConfigError,
                                    config_from_params, debug_config)
from taste.tokenizer.model import DecodeResult, TasteTokenizer, TokenizerInputError, WordCodes

__all__ = [
    "AggregatorConfig", "DecoderConfig", "RVQConfig", "TasteConfig", "TokenizerConfigError", "config_from_params",
    "debug_config", "DecodeResult", "TasteTokenizer", "TokenizerInputError", "WordCodes",
]
