"""Text side and ASR: the BPE subword tokenizer and a small Whisper (TASTE's speech encoder, the ASR of prompts)."""
