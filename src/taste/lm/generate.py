"""KV-cached autoregressive generation for the text LM, TASLM and the S3-unit LM.

Text: top-p / temperature / repetition penalty (METHOD.md 3). TASTE codes: greedy at word starts (token
variant) or sampled from the predicted Gaussian and re-quantised by the tokenizer's RVQ (embed variant).
Each generator stops once ``target_words`` new words are complete and counts its LM forward steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from taste.lm.patterns import is_new_word
from taste.lm.text_lm import LMVocab
from taste.tokenizer.sampling import sample_top_k


@dataclass(frozen=True)
class Sampling:
    top_p: float = 0.3
    temperature: float = 0.5
    repetition_penalty: float = 1.1
    unit_top_k: int = 25
    max_tokens_per_word: int = 6  # safety cap on text tokens per generated word


class Codebook(Protocol):
    """What generation needs from the TASTE tokenizer."""

    def codes_to_vectors(self, codes: Tensor) -> Tensor: ...  # [N, n_q] -> [N, D]

    def quantize(self, vectors: Tensor) -> Tensor: ...  # [N, D] -> [N, n_q]


def sample_top_p(logits: Tensor, history: list[int], s: Sampling, generator: torch.Generator,
                 banned: tuple[int, ...] = ()) -> int:
    """logits: [V]. Repetition penalty on seen ids (CTRL style), temperature, nucleus sampling; never `banned`."""
    logits = logits.float().clone()
    if banned:
        logits[list(banned)] = float("-inf")
    if history and s.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(history)), dtype=torch.long)
        vals = logits[seen]
        logits[seen] = torch.where(vals > 0, vals / s.repetition_penalty, vals * s.repetition_penalty)
    probs = torch.softmax(logits / max(s.temperature, 1e-5), dim=-1)
    sorted_p, order = probs.sort(descending=True)
    keep = (sorted_p.cumsum(0) - sorted_p) < s.top_p  # always keeps the most likely id
    sorted_p = sorted_p * keep
    choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=generator)
    return int(order[choice])


class _WordCounter:
    """Counts whitespace words of the decoded text as tokens arrive (THE word segmentation: text.split())."""

    def __init__(self, tokenizer, vocab: LMVocab, ids: list[int]):
        self.tok, self.vocab, self.ids = tokenizer, vocab, [i for i in ids if i < vocab.base_size]
        self.text = tokenizer.decode(self.ids)

    def starts_word(self, token: int) -> bool:
        if token >= self.vocab.base_size:
            return False
        return is_new_word(self.text, self.tok.decode(self.ids + [token]))

    def push(self, token: int) -> None:
        if token < self.vocab.base_size:
            self.ids.append(token)
            self.text = self.tok.decode(self.ids)

    @property
    def n_words(self) -> int:
        return len(self.text.split())

    def non_starters(self) -> tuple[int, ...]:
        """Ids that would extend the current last word: banned at the first step, so the prompt's words stay whole."""
        key = id(self.tok)
        if key not in _NON_STARTERS:
            probe = self.tok.encode("a").ids
            base = self.tok.decode(probe)
            _NON_STARTERS[key] = tuple(i for i in range(self.vocab.base_size)
                                       if not is_new_word(base, self.tok.decode(probe + [i])))
        return _NON_STARTERS[key]


_NON_STARTERS: dict[int, tuple[int, ...]] = {}  # per tokenizer object (tokenizers.Tokenizer is not hashable)


def _banned(vocab: LMVocab, words: _WordCounter, n_prompt: int, target_words: int,
            first: bool = False) -> tuple[int, ...]:
    """bos and pad never; eos until the continuation has its target number of words; at the first step
    anything that is not a word start (the prompt ends on a word boundary)."""
    early = words.n_words - n_prompt < target_words
    banned = (vocab.bos, vocab.pad, vocab.eos) if early else (vocab.bos, vocab.pad)
    return banned + words.non_starters() if first and n_prompt > 0 else banned


@dataclass
class TextGeneration:
    text: str  # continuation only
    lm_steps: int


@torch.no_grad()
def generate_text(lm, tokenizer, vocab: LMVocab, prompt_text: str, target_words: int, s: Sampling,
                  generator: torch.Generator) -> TextGeneration:
    """Continue ``prompt_text`` with the plain text LM (the cascade's middle part)."""
    ids = [vocab.bos, *tokenizer.encode(prompt_text).ids]
    words = _WordCounter(tokenizer, vocab, ids[1:])
    n_prompt = words.n_words
    out = lm(input_ids=torch.tensor([ids]), use_cache=True)
    steps, generated = 0, []
    for _ in range(target_words * s.max_tokens_per_word):
        banned = _banned(vocab, words, n_prompt, target_words, first=steps == 0)
        token = sample_top_p(out.logits[0, -1], ids, s, generator, banned)
        if token == vocab.eos or (words.starts_word(token) and words.n_words - n_prompt >= target_words):
            break
        words.push(token)
        ids.append(token)
        generated.append(token)
        out = lm(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)
        steps += 1
    return TextGeneration(" ".join(words.text.split()[n_prompt:]), steps)


@dataclass
class TASLMGeneration:
    text: str  # continuation only
    codes: Tensor  # LongTensor[N_prompt_words + N_new_words, n_q]: the prompt's codes, then the generated ones
    n_prompt_words: int
    lm_steps: int
    token_ids: list[int]  # bos, prompt tokens, generated tokens (the fed sequence)
    word_index: list[int]  # per token, -1 for bos


def _predict_codes(model, hidden: Tensor, codebook: Codebook, generator: torch.Generator) -> Tensor:
    """hidden: [d] -> codes [n_q]: greedy per codebook (token) or a Gaussian sample re-quantised (embed)."""
    if model.config.variant == "token":
        return model.code_logits(hidden).argmax(-1)
    mean, logvar = model.vector_stats(hidden)
    noise = torch.randn(mean.shape, generator=generator)
    return codebook.quantize((mean + noise * torch.exp(0.5 * logvar)).unsqueeze(0))[0].long()


@dataclass
class _TaslmPrompt:
    """The state after reading a prompt: the model's last output (with its cache), the token ids and word index of
    the text stream, the prompt's code rows, and the TASTE input the next token carries."""

    out: Any
    ids: list[int]
    word_index: list[int]
    prompt_token_ids: list[int]
    codes: list[Tensor]
    current_vec: Tensor
    current_has: Tensor


def _read_taslm_prompt(model, codebook: Codebook, tokenizer, vocab: LMVocab, word_ids_fn, prompt_text: str,
                       prompt_codes: Tensor) -> _TaslmPrompt:
    """Check the prompt (one code row per word) and run the model over it in one forward pass."""
    from taste.lm.data import build_taslm_example

    if model.config.delay != 1:
        raise ValueError(f"generation implements the paper's delay of 1 word, model has delay {model.config.delay}")
    n_prompt = len(prompt_text.split())
    if prompt_codes.shape[0] != n_prompt:
        raise ValueError(f"prompt has {n_prompt} words but {prompt_codes.shape[0]} code rows")
    tok_ids, wi = word_ids_fn(tokenizer, prompt_text)
    ids, wi = [vocab.bos, *tok_ids], [-1, *wi]
    vectors = codebook.codes_to_vectors(prompt_codes).float()
    ex = build_taslm_example(ids, wi, prompt_codes, vectors, model.config.delay)
    out = model(ex.input_ids[None], ex.taste_vectors[None], ex.has_taste[None], use_cache=True)
    return _TaslmPrompt(out, ids, wi, tok_ids, [c for c in prompt_codes.long()], ex.taste_vectors[-1],
                        ex.has_taste[-1])


@torch.no_grad()
def generate_taslm(model, codebook: Codebook, tokenizer, vocab: LMVocab, word_ids_fn, prompt_text: str,
                   prompt_codes: Tensor, target_words: int, s: Sampling, generator: torch.Generator) -> TASLMGeneration:
    """Continue a spoken prompt: its ASR text and TASTE codes [N_prompt_words, n_q] -> text + one code row per word.

    Delay 1: when a sampled token starts a new word, the hidden state that sampled it also gives the codes of
    the word just finished; those codes ride on the new token's input and are carried forward.
    """
    model.eval()
    prompt = _read_taslm_prompt(model, codebook, tokenizer, vocab, word_ids_fn, prompt_text, prompt_codes)
    out, ids, wi, codes = prompt.out, prompt.ids, prompt.word_index, prompt.codes
    current_vec, current_has = prompt.current_vec, prompt.current_has
    n_prompt = len(prompt_text.split())
    words = _WordCounter(tokenizer, vocab, prompt.prompt_token_ids)
    steps = 0
    for _ in range(target_words * s.max_tokens_per_word):
        hidden = out.hidden[0, -1]
        banned = _banned(vocab, words, n_prompt, target_words, first=steps == 0)
        token = sample_top_p(out.text_logits[0, -1], ids, s, generator, banned)
        new_word = token == vocab.eos or words.starts_word(token)
        done = token == vocab.eos or (new_word and words.n_words - n_prompt >= target_words)
        if new_word and words.n_words > 0:
            # The word just finished gets its codes now (prompt words already have theirs); delay 1 puts
            # them on the next input, and they are carried forward until the following word starts.
            if words.n_words > len(codes):
                codes.append(_predict_codes(model, hidden, codebook, generator))
            current_vec = codebook.codes_to_vectors(codes[words.n_words - 1][None])[0].float()
            current_has = torch.tensor(True)
        if done:
            break
        words.push(token)
        ids.append(token)
        wi.append(words.n_words - 1)
        out = model(torch.tensor([[token]]), current_vec[None, None], current_has.view(1, 1),
                    cache=out.cache, use_cache=True)
        steps += 1
    else:  # token cap reached mid-word: the last word still needs its codes
        if words.n_words > len(codes):
            codes.append(_predict_codes(model, out.hidden[0, -1], codebook, generator))
    text = " ".join(words.text.split()[n_prompt:])
    return TASLMGeneration(text, torch.stack(codes)[: n_prompt + len(text.split())], n_prompt, steps, ids, wi)


@dataclass
class S3Generation:
    text: str  # continuation text (the text stream after the prompt's words)
    units: Tensor  # LongTensor[U_new]: generated units only
    lm_steps: int


@torch.no_grad()
def generate_s3(model, tokenizer, vocab: LMVocab, prompt_text: str, prompt_units: Tensor, target_words: int,
                max_units: int, s: Sampling, generator: torch.Generator) -> S3Generation:
    """Continue a prompt with the S3-unit LM: one forward step per 25 Hz unit, text sampled alongside.

    The prompt's text sits at the start of the text stream (as in training); once it is used up, the text
    head's samples fill the stream, then eos and padding. Units stop at the unit eos or ``max_units``.
    """
    cfg = model.config
    text = [vocab.bos, *tokenizer.encode(prompt_text).ids]
    units = [cfg.unit_bos, *prompt_units.long().tolist()]
    n_prefill = min(len(text), len(units))
    out = model(torch.tensor([units[:n_prefill]]), torch.tensor([text[:n_prefill]]), use_cache=True)
    unit_logits, text_logits, past = out
    words = _WordCounter(tokenizer, vocab, text[1:])
    n_prompt, text_done, steps, new_units = words.n_words, False, 0, []
    n_text_prompt = len(text)
    for t in range(n_prefill, len(units) + max_units):
        if t < len(text):
            next_text = text[t]
        elif text_done:
            next_text = vocab.pad
        else:
            banned = _banned(vocab, words, n_prompt, target_words, first=len(text) == n_text_prompt)
            next_text = sample_top_p(text_logits[0, -1], text, s, generator, banned)
            if next_text == vocab.eos or (words.starts_word(next_text) and words.n_words - n_prompt >= target_words):
                next_text, text_done = vocab.eos, True
            words.push(next_text)
            text.append(next_text)
        if t < len(units):
            next_unit = units[t]
        else:
            next_unit = int(sample_top_k(unit_logits[0, -1, : cfg.n_units + 2].float(), s.unit_top_k, generator,
                                         always_draw=True))
            if next_unit == cfg.unit_eos:
                break
            if next_unit == cfg.unit_bos:  # never valid mid-stream: take the best real unit instead
                next_unit = int(unit_logits[0, -1, : cfg.n_units].argmax())
            new_units.append(next_unit)
        unit_logits, text_logits, past = model(torch.tensor([[next_unit]]), torch.tensor([[next_text]]),
                                               cache=past, use_cache=True)
        steps += 1
    return S3Generation(" ".join(words.text.split()[n_prompt:]), torch.tensor(new_units, dtype=torch.long), steps)
