"""Likelihood probes in miniature: a spoken StoryCloze analog and a SALMon-style acoustic-consistency probe.

Every system is seen through one small protocol, `LikelihoodScorer.score(utterance) -> log-likelihood`. Adapters turn
the study's models into scorers: TASLM = text + TASTE log-likelihood, S3-unit LM = unit log-likelihood,
cascade = text-LM log-likelihood. A system wins an item when it gives the natural candidate the higher score.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from taste.training.saved_model import SavedModelError

SAMPLE_RATE = 16000
GAP_SECONDS = 0.15  # silence between a StoryCloze context and its ending


@dataclass(frozen=True)
class ProbeUtterance:
    """What a scorer sees: the words and the 16 kHz waveform that speaks them (wav: float32 [T])."""

    text: str
    wav: np.ndarray


@runtime_checkable
class LikelihoodScorer(Protocol):
    def score(self, utterance: ProbeUtterance) -> float:
        """Total natural-log likelihood of the utterance under the system (higher = more plausible)."""
        ...


# ---------------------------------------------------------------------------------------------------------------------
# Adapters: each wraps the callables one system needs
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class TextScorer:
    """Cascade: only the words count, scored by the text LM (the audio is what the ASR would read)."""

    text_loglik: Callable[[str], float]

    def score(self, utterance: ProbeUtterance) -> float:
        return float(self.text_loglik(utterance.text))


@dataclass
class UnitScorer:
    """S3-unit LM: the waveform becomes units, scored with the text that accompanies them."""

    encode_units: Callable[[np.ndarray], Sequence[int]]
    unit_loglik: Callable[[str, Sequence[int]], float]

    def score(self, utterance: ProbeUtterance) -> float:
        return float(self.unit_loglik(utterance.text, self.encode_units(utterance.wav)))


@dataclass
class TaslmScorer:
    """TASLM: words + one TASTE token per word; the score is text log-likelihood + TASTE log-likelihood."""

    encode_codes: Callable[[np.ndarray, str], Tensor]  # (wav, text) -> codes [N_words, n_q]
    joint_loglik: Callable[[str, Tensor], tuple[float, float]]  # (text, codes) -> (text_ll, taste_ll)

    def score(self, utterance: ProbeUtterance) -> float:
        text_ll, taste_ll = self.joint_loglik(utterance.text, self.encode_codes(utterance.wav, utterance.text))
        return float(text_ll + taste_ll)


# ---------------------------------------------------------------------------------------------------------------------
# Model-level log-likelihoods (batch of one, no gradients)
# ---------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def causal_lm_loglik(model, ids: Sequence[int]) -> float:
    """Sum of log p(ids[t] | ids[:t]) for t >= 1 under a transformers causal LM (ids include bos/eos)."""
    if len(ids) < 2:
        raise ValueError("need at least two token ids (bos + one token) to score")
    x = torch.tensor([list(ids)], dtype=torch.long)
    logp = F.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)  # (T-1, V)
    return float(logp.gather(1, x[0, 1:, None]).sum())


def gaussian_loglik(target: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Diagonal Gaussian log-density summed over the last dim. target, mean, logvar: [..., D] -> [...]."""
    return -0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar) + np.log(2 * np.pi)).sum(-1)


@torch.no_grad()
def taslm_loglik(model, batch: dict[str, Tensor]) -> tuple[float, float]:
    """(text_ll, taste_ll) of one collate_taslm batch (B = 1) under a TASLM.

    Token variant: sum of log p(code) over codebooks at word-start targets; embed variant: Gaussian log-density of
    the target TASTE vector under the predicted mean and log-variance (a density, so not comparable across variants).
    """
    out = model(batch["input_ids"], batch["taste_vectors"], batch["has_taste"], batch["attention_mask"])
    labels = batch["next_ids"]
    mask = labels >= 0
    logp = F.log_softmax(out.text_logits.float(), dim=-1)
    text_ll = float(logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0][mask].sum())
    has_target = batch["has_target"]
    hidden = out.hidden[has_target]  # (M, d)
    if model.config.variant == "token":
        code_logp = F.log_softmax(model.code_logits(hidden).float(), dim=-1)  # (M, n_q, K)
        targets = batch["target_codes"][has_target]  # (M, n_q)
        taste_ll = float(code_logp.gather(-1, targets[..., None]).sum())
    else:
        mean, logvar = model.vector_stats(hidden)
        taste_ll = float(gaussian_loglik(batch["target_vectors"][has_target].float(), mean.float(), logvar.float()).sum())
    return text_ll, taste_ll


@torch.no_grad()
def s3_unit_loglik(model, batch: dict[str, Tensor]) -> float:
    """Sum of log p(next unit) over one collate_s3 batch (B = 1) under the S3-unit LM (text stream as input)."""
    unit_logits, _, _ = model(batch["unit_ids"], batch["text_ids"], batch["attention_mask"])
    labels = batch["next_units"]
    mask = labels >= 0
    logp = F.log_softmax(unit_logits.float(), dim=-1)
    return float(logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0][mask].sum())


# ---------------------------------------------------------------------------------------------------------------------
# Scorers for the study's trained systems (models loaded by the caller; mel_fn: wav [T] -> log-mel [n_mels, F])
# ---------------------------------------------------------------------------------------------------------------------
def cascade_scorer(text_lm, bpe, vocab) -> TextScorer:
    from taste.lm.text_lm import encode_sentence

    return TextScorer(lambda text: causal_lm_loglik(text_lm, encode_sentence(bpe, text, vocab)))


def s3_scorer(s3_lm, unit_tokenizer, bpe, vocab, mel_fn: Callable[[np.ndarray], Tensor], max_len: int = 1000) -> UnitScorer:
    """unit_tokenizer: the study's prompt unit encoder (`taste.lm.continuation.prompt_unit_encoder`: the trained
    UnitTokenizer or CosyVoice's S3 tokenizer, by units.backend), or a trained UnitTokenizer itself."""
    from taste.lm.continuation import PromptUnitEncoder
    from taste.lm.data import collate_s3, s3_example

    n_units = s3_lm.config.n_units
    encoder = (unit_tokenizer if isinstance(unit_tokenizer, PromptUnitEncoder)
               else PromptUnitEncoder("trained", unit_tokenizer, sample_rate=SAMPLE_RATE))

    def encode(wav: np.ndarray) -> list[int]:
        units = encoder.encode(wav, mel_fn).tolist()
        if units and max(units) >= n_units:
            raise ValueError(f"unit {max(units)} from the {encoder.backend} unit tokenizer is outside the S3-unit LM's "
                             f"{n_units} units (units.backend differs from the one the LM was trained on?)")
        return units

    def loglik(text: str, units: Sequence[int]) -> float:
        ex = s3_example(bpe.encode(text).ids, torch.tensor(list(units)), vocab, n_units, max_len)
        return s3_unit_loglik(s3_lm, collate_s3([ex], vocab.pad, n_units))

    return UnitScorer(encode, loglik)


def taslm_scorer(taslm, taste_tokenizer, bpe, vocab, word_ids_fn, mel_fn: Callable[[np.ndarray], Tensor]) -> TaslmScorer:
    from taste.lm.data import build_taslm_example, collate_taslm, token_stream

    def encode(wav: np.ndarray, text: str) -> Tensor:
        return taste_tokenizer.encode(mel_fn(wav), text).codes

    def loglik(text: str, codes: Tensor) -> tuple[float, float]:
        ids, wi = token_stream(bpe, text, vocab, word_ids_fn)
        with torch.no_grad():
            vectors = taste_tokenizer.codes_to_vectors(codes).float()
        ex = build_taslm_example(ids, wi, codes, vectors, taslm.config.delay)
        return taslm_loglik(taslm, collate_taslm([ex], vocab.pad))

    return TaslmScorer(encode, loglik)


@dataclass(frozen=True)
class ModelPaths:
    """Where the study's stages save the models the scorers need (relative to the repository root)."""

    taste: str = "models/taste/tokenizer"
    units: str = "models/units"
    text_lm: str = "models/lm_pretrain/text_lm"  # stage lm_pretrain; also holds the LM's tokenizer.json, lm_vocab.json
    taslm: str = "models/lm/taslm_{variant}"     # stage taslm
    s3_lm: str = "models/lm_pretrain/s3_lm"      # stage lm_pretrain
    unit_backend: dict | None = None             # params' units section (backend, s3_path, s3_name): picks the S3 LM's
                                                 # unit tokenizer; None = the trained tokenizer at `units`


def encoder_window_seconds(asr_dir: str | Path, frames_per_second: float = 100.0) -> float:
    """Longest audio the study's Whisper encoder (also TASTE's speech encoder) accepts: 2 x max_source_positions
    mel frames. Probe candidates longer than this cannot be scored."""
    import json

    path = Path(asr_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ASR config (run the asr stage)")
    return 2 * int(json.loads(path.read_text())["max_source_positions"]) / frames_per_second


def load_system_scorers(paths: ModelPaths, mel_fn: Callable[[np.ndarray], Tensor],
                        systems: Sequence[str]) -> tuple[dict[str, LikelihoodScorer], dict[str, str]]:
    """Scorers for the systems whose models load; (scorers, {system: why it has none}) -- a missing model is
    reported, not fatal, so the rest of the evaluation still runs."""
    from taste.asr.bpe import word_ids
    from taste.lm.pipeline import load_text_lm

    try:
        text_lm, bpe, vocab = load_text_lm(paths.text_lm)
    except (FileNotFoundError, OSError) as err:
        return {}, {s: f"text LM: {type(err).__name__}: {err}" for s in systems}
    loaders: dict[str, Callable[[], LikelihoodScorer]] = {
        "cascade": lambda: cascade_scorer(text_lm, bpe, vocab),
        "s3_lm": lambda: _load_s3(paths, text_lm, bpe, vocab, mel_fn),
        "taslm_token": lambda: _load_taslm(paths, "token", text_lm, bpe, vocab, word_ids, mel_fn),
        "taslm_embed": lambda: _load_taslm(paths, "embed", text_lm, bpe, vocab, word_ids, mel_fn),
    }
    scorers, missing = {}, {}
    for system in systems:
        try:
            scorers[system] = loaders[system]()
        except (FileNotFoundError, OSError, KeyError, SavedModelError) as err:  # e.g. LoRA adapters of another base
            missing[system] = f"{type(err).__name__}: {err}"
    return scorers, missing


def _load_s3(paths: ModelPaths, text_lm, bpe, vocab, mel_fn) -> UnitScorer:
    """The S3-unit LM's scorer; its units come from the configured unit backend (paths.unit_backend, the params' units
    section): the trained tokenizer at paths.units, or CosyVoice's S3 tokenizer from units.s3_path."""
    from taste.lm.continuation import prompt_unit_encoder
    from taste.lm.s3_lm import S3UnitLM

    s3_lm = S3UnitLM.from_pretrained(paths.s3_lm, base_lm=text_lm)  # the base: for LoRA adapters
    backend = paths.unit_backend or {"backend": "trained", "s3_path": None}  # no units section: the trained tokenizer
    encoder = prompt_unit_encoder(backend, Path(paths.units).parent, SAMPLE_RATE, unit_dir=paths.units)
    return s3_scorer(s3_lm, encoder, bpe, vocab, mel_fn)


def _load_taslm(paths: ModelPaths, variant: str, text_lm, bpe, vocab, word_ids_fn, mel_fn) -> TaslmScorer:
    from taste.lm.taslm import TASLM
    from taste.tokenizer.model import TasteTokenizer

    model = TASLM.from_pretrained(paths.taslm.format(variant=variant), base_lm=text_lm)  # the base: for LoRA adapters
    return taslm_scorer(model, TasteTokenizer.from_pretrained(paths.taste), bpe, vocab, word_ids_fn, mel_fn)


# ---------------------------------------------------------------------------------------------------------------------
# Probe items
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeItem:
    """One forced choice: the natural candidate should score higher than the other."""

    item_id: str
    kind: str  # storycloze | rate | pitch | speaker
    natural: ProbeUtterance
    unnatural: ProbeUtterance


def concatenate(parts: Sequence[ProbeUtterance], gap_s: float = GAP_SECONDS) -> ProbeUtterance:
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces = [p.wav.astype(np.float32) for p in parts]
    wav = np.concatenate([x for piece in pieces for x in (piece, gap)][:-1])
    return ProbeUtterance(" ".join(p.text for p in parts), wav)


def splice(a: ProbeUtterance, a_words, b: ProbeUtterance, b_words, k: int) -> ProbeUtterance:
    """a's first k words then b's words from k on (same sentence, two renditions), cut at word starts.

    a_words, b_words: WordAlignment sequences (seconds from the start of each waveform), same length as text.split().
    """
    n = len(a.text.split())
    if a.text != b.text or len(a_words) != n or len(b_words) != n:
        raise ValueError("splice needs two renditions of the same text with one alignment per word")
    if not 0 < k < n:
        raise ValueError(f"splice point {k} must fall inside the {n} words")
    cut_a = int(round(a_words[k].start * SAMPLE_RATE))
    cut_b = int(round(b_words[k].start * SAMPLE_RATE))
    return ProbeUtterance(a.text, np.concatenate([a.wav[:cut_a], b.wav[cut_b:]]).astype(np.float32))


def storycloze_items(utterances, sentence_index: Callable, load: Callable, n: int, seed: int = 0,
                     max_seconds: float | None = None) -> list[ProbeItem]:
    """Context sentence i of a story followed by its true next sentence (the next one with audio) vs a sentence of
    another story.

    utterances: Utterance records with story_id; sentence_index(utt) -> position of its text in its story (or None);
    load(utt) -> ProbeUtterance. The distractor is by the same speaker when possible (speaker is not the cue) and
    has the true ending's word count when possible (length is not the cue). max_seconds: both candidates must fit
    (the models' encoders have a fixed window).
    """
    fits = lambda a, b: max_seconds is None or a.duration + GAP_SECONDS + b.duration <= max_seconds  # noqa: E731
    by_story: dict[str, dict[int, object]] = defaultdict(dict)
    for u in utterances:
        i = sentence_index(u) if u.story_id else None
        if i is not None:
            by_story[u.story_id][i] = u
    # Context i and the next sentence of the same story that has audio (i + 1 when the corpus has it).
    pairs = [(s[i], s[j]) for s in by_story.values() for i, j in zip(sorted(s), sorted(s)[1:]) if fits(s[i], s[j])]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    items = []
    for context, ending in pairs:
        if len(items) == n:
            break
        others = [u for u in utterances if u.story_id and u.story_id != context.story_id and fits(context, u)]
        if not others:
            continue
        n_words = len(ending.text.split())
        distractor = min(others, key=lambda u: (u.speaker != ending.speaker, abs(len(u.text.split()) - n_words),
                                                rng.random()))
        ctx = load(context)
        items.append(ProbeItem(f"cloze_{context.id}", "storycloze", concatenate([ctx, load(ending)]),
                               concatenate([ctx, load(distractor)])))
    return items


def storycloze_skip_reason(stories: Sequence) -> str | None:
    """Why the StoryCloze probe cannot run (None when it can): it needs each utterance's story and sentence position,
    which only story metadata (stories.jsonl) gives."""
    from taste.evaluation.coherence import NO_STORY_METADATA

    return None if stories else f"{NO_STORY_METADATA}; StoryCloze needs each utterance's story and sentence order"


def consistency_skip_reason(utterances, source: str) -> str | None:
    """Why the acoustic-consistency probes cannot run (None when they can): they splice two renditions of one
    sentence (the global rate / pitch pairs), which only a synthesiser makes; a real corpus (data.source
    librispeech / libritts / folder) has none."""
    from taste.swap.jobs import no_renditions_reason

    reason = no_renditions_reason(utterances, source, sets=("global_rate", "global_pitch"))
    return None if reason is None else f"{reason}; the consistency probes splice two renditions of one sentence"


def consistency_items(utterances, load: Callable, n: int, seed: int = 0) -> list[ProbeItem]:
    """From pair sets (same sentence, two renditions: slow/fast, low/high pitch): a rendition vs a splice that
    switches to the other rendition mid-way. Both directions are used, so a length bias cancels out on average."""
    kinds = {"global_rate": "rate", "global_pitch": "pitch"}
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for u in utterances:
        if u.pair is not None and u.pair.set in kinds and u.words:
            groups[(u.pair.set, u.pair.pair_id)].append(u)
    items = []
    for (set_name, pair_id), pair in sorted(groups.items()):
        if len(pair) != 2 or pair[0].text != pair[1].text or len(pair[0].words) < 2:
            continue
        a, b = sorted(pair, key=lambda u: u.pair.role)
        wa, wb = load(a), load(b)
        k = len(a.words) // 2
        items.append(ProbeItem(f"{pair_id}_ab", kinds[set_name], wa, splice(wa, a.words, wb, b.words, k)))
        items.append(ProbeItem(f"{pair_id}_ba", kinds[set_name], wb, splice(wb, b.words, wa, a.words, k)))
    random.Random(seed).shuffle(items)
    return items[:n]


# ---------------------------------------------------------------------------------------------------------------------
# Running a probe
# ---------------------------------------------------------------------------------------------------------------------
def run_probe(scorer: LikelihoodScorer, items: Sequence[ProbeItem]) -> np.ndarray:
    """1.0 where the natural candidate scores higher, 0.5 on a tie, 0.0 otherwise -> float [N]."""
    wins = np.zeros(len(items))
    for i, item in enumerate(items):
        good, bad = scorer.score(item.natural), scorer.score(item.unnatural)
        wins[i] = 1.0 if good > bad else 0.5 if good == bad else 0.0
    return wins


def accuracy_with_ci(wins: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    from taste.metrics.stats import bootstrap_ci

    if len(wins) == 0:
        return {"accuracy": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    lo, hi = bootstrap_ci(wins, statistic=np.mean, n=n_boot, seed=seed)
    return {"accuracy": float(np.mean(wins)), "lo": lo, "hi": hi, "n": int(len(wins))}
