"""Token-swap analysis: move the TASTE codes of chosen words from a donor rendition into a recipient and measure
how much of the donor's word timing and pitch follows (transfer) and how much spills onto other words (leakage)."""

from taste.swap.spans import SPAN_RULES, SwapError, all_except, mismatch_codes, span_indices, swap_codes

__all__ = ["SPAN_RULES", "SwapError", "all_except", "mismatch_codes", "span_indices", "swap_codes"]
