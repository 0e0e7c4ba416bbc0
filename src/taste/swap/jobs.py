"""Swap experiments as data: pairs from the swap manifests, and the decode jobs (references, swaps, ablations)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from torch import Tensor

from taste.data.records import Utterance
from taste.swap.spans import SPAN_RULES, SwapError, all_except, mismatch_codes, mismatch_sources, span_indices, swap_codes

# Which rendition plays which part; both directions are run, so the order only fixes the "forward" direction.
ROLE_ORDER = {"global_rate": ("slow", "fast"), "global_pitch": ("low", "high"), "local": ("base", "variant")}
REFERENCE_CONDITIONS = ("recon_recipient", "recon_donor")


def no_renditions_reason(utterances: Iterable[Utterance], source: str, sets: Sequence[str] | None = None
                         ) -> str | None:
    """Why a corpus offers no same-text renditions of a sentence (None when it does): the one check behind every
    study that needs two renditions (the swap pairs here, the splice probes of taste.evaluation.probes). Only a
    synthesiser makes them, so a real corpus (data.source librispeech / libritts / folder) has none. An utterance
    counts when it carries pair info, of one of `sets` when given."""
    if any(u.pair is not None and (sets is None or u.pair.set in sets) for u in utterances):
        return None
    return f"corpus has no same-text renditions (data.source={source})"


@dataclass(frozen=True)
class SwapPair:
    """Two renditions of one sentence; `forward` says recipient = first role of ROLE_ORDER."""

    set: str
    pair_id: str
    text: str
    recipient_id: str
    donor_id: str
    changed_word: int | None = None
    forward: bool = True

    @property
    def n_words(self) -> int:
        return len(self.text.split())

    @property
    def direction(self) -> str:
        first, second = ROLE_ORDER[self.set]
        return f"{second}->{first}" if self.forward else f"{first}->{second}"


@dataclass(frozen=True)
class SwapJob:
    """One decode: `codes` Long[N_words, n_q] spoken with the recipient's speaker embedding.

    condition: recon_recipient | recon_donor | swap | mismatch | control; `words` = swapped word indices;
    `sources` = donor word each swapped word took its codes from (differs from `words` only for mismatch).
    """

    pair: SwapPair
    condition: str
    span: str
    words: tuple[int, ...]
    sources: tuple[int, ...]
    codes: Tensor

    @property
    def key(self) -> tuple:
        return (self.pair.set, self.pair.pair_id, self.pair.forward, self.condition, self.span)


def build_pairs(utterances: Sequence[Utterance], max_pairs: int | Mapping[str, int] | None = None) -> list[SwapPair]:
    """Group utterances by (set, pair_id) -> both directed pairs of each complete pair, in sorted order.

    Raises ValueError when a pair has the wrong roles or its two texts differ (a swap needs the same words).
    `max_pairs` keeps the first pairs (sorted by id) of each set: one cap for all, or a cap per set name
    (a set missing from the mapping is skipped; None = no cap).
    """
    groups: dict[tuple[str, str], dict[str, Utterance]] = defaultdict(dict)
    for utt in utterances:
        if utt.pair is not None:
            groups[(utt.pair.set, utt.pair.pair_id)][utt.pair.role] = utt
    per_set: dict[str, int] = defaultdict(int)
    out: list[SwapPair] = []
    for (set_name, pair_id), roles in sorted(groups.items()):
        if set_name not in ROLE_ORDER:
            raise ValueError(f"pair {pair_id}: unknown swap set {set_name!r}")
        first, second = ROLE_ORDER[set_name]
        if set(roles) != {first, second}:
            raise ValueError(f"pair {pair_id} ({set_name}): roles {sorted(roles)}, expected {first} and {second}")
        a, b = roles[first], roles[second]
        if a.text.split() != b.text.split():
            raise ValueError(f"pair {pair_id} ({set_name}): the two renditions have different words")
        cap = max_pairs.get(set_name, 0) if isinstance(max_pairs, Mapping) else max_pairs
        if cap is not None and per_set[set_name] >= cap:
            continue
        per_set[set_name] += 1
        j = a.pair.changed_word if set_name == "local" else None
        if set_name == "local" and (j is None or not 0 <= j < len(a.text.split())):
            raise ValueError(f"local pair {pair_id}: changed_word {j} missing or out of range")
        out.append(SwapPair(set_name, pair_id, a.text, a.id, b.id, j, forward=True))
        out.append(SwapPair(set_name, pair_id, a.text, b.id, a.id, j, forward=False))
    return out


def _swap_job(pair, condition, span, words, recipient, donor, seed) -> SwapJob:
    if condition == "mismatch":
        sources = tuple(mismatch_sources(words, pair.n_words, seed))
        codes = mismatch_codes(recipient, donor, words, seed)
    else:
        sources = tuple(words)
        codes = swap_codes(recipient, donor, words)
    return SwapJob(pair, condition, span, tuple(words), sources, codes)


def jobs_for_pair(pair: SwapPair, recipient: Tensor, donor: Tensor, spans: Sequence[str] = SPAN_RULES,
                  mismatch_span: str | None = "first_third", seed: int = 0) -> list[SwapJob]:
    """All decode jobs of one directed pair (recipient, donor: Long[N_words, n_q]).

    Global sets: the references, one swap per span rule and the content-mismatch ablation on `mismatch_span`.
    Local set: the references, swap of the changed word j ("changed"), the control (every word but j), the
    one-sided controls (the words before j, the words after j; where j has such words) and the mismatch ablation
    on word j. `seed` picks the single word and the mismatch sources (offset by pair).
    """
    if recipient.shape != donor.shape or recipient.shape[0] != pair.n_words:
        raise SwapError(f"pair {pair.pair_id}: codes {tuple(recipient.shape)} / {tuple(donor.shape)} do not match "
                        f"the {pair.n_words} words of {pair.text!r}")
    rule_seed = seed + sum(map(ord, pair.pair_id))  # a different single word per pair, same in both directions
    jobs = [SwapJob(pair, "recon_recipient", "none", (), (), recipient.clone()),
            SwapJob(pair, "recon_donor", "all", tuple(range(pair.n_words)), tuple(range(pair.n_words)), donor.clone())]
    if pair.set == "local":
        j = pair.changed_word
        jobs.append(_swap_job(pair, "swap", "changed", [j], recipient, donor, rule_seed))
        jobs.append(_swap_job(pair, "control", "all_but_changed", all_except(pair.n_words, j), recipient, donor,
                              rule_seed))
        # Which side of j carries j's timing: the words before j only, the words after j only
        if j > 0:
            jobs.append(_swap_job(pair, "control_before", "before_changed", list(range(j)), recipient, donor,
                                  rule_seed))
        if j < pair.n_words - 1:
            jobs.append(_swap_job(pair, "control_after", "after_changed", list(range(j + 1, pair.n_words)),
                                  recipient, donor, rule_seed))
        if mismatch_span is not None and pair.n_words >= 2:
            jobs.append(_swap_job(pair, "mismatch", "changed", [j], recipient, donor, rule_seed))
        return jobs
    for rule in spans:
        jobs.append(_swap_job(pair, "swap", rule, span_indices(pair.n_words, rule, rule_seed), recipient, donor,
                              rule_seed))
    if mismatch_span is not None and pair.n_words >= 2:
        words = span_indices(pair.n_words, mismatch_span, rule_seed)
        jobs.append(_swap_job(pair, "mismatch", mismatch_span, words, recipient, donor, rule_seed))
    return jobs
