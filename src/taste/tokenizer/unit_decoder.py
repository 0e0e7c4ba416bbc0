"""Unit decoder (CosyVoice-LM shape at CPU size): text branch + TASTE branch, softmax-weighted fusion,
speaker embedding, a causal Transformer over units (+ BND in word_sync mode) + EOS; KV-cached batched sampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taste.tokenizer.aggregator import pool_words
from taste.tokenizer.config import DecoderConfig
from taste.tokenizer.sampling import sample_top_k
from taste.tokenizer.streams import stream_word_features, stream_word_lengths


class CausalBlock(nn.Module):
    """Pre-LN causal self-attention block with an optional KV cache."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_valid: Tensor, cache: dict | None = None) -> Tensor:
        """x: [B, T_new, D]; key_valid: Bool[B, T_total] over cached + new positions; cache holds k, v [B, H, T, D/H]."""
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for z in self.qkv(self.ln1(x)).chunk(3, dim=-1))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        total = k.shape[2]
        causal = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=total - t)
        mask = (causal.unsqueeze(0) & key_valid[:, None, :]).unsqueeze(1)  # (B, 1, T_new, T_total)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


def _branch(d: int, n_heads: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, n_heads, 4 * d, dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def row_generators(seed: int | Sequence[int], batch: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per batch row. An int seeds every row alike, a sequence gives each row its own seed: either
    way a row's random stream depends only on its seed, not on its position or its batch-mates (so decoding the
    same item alone, in another batch or in another order gives the same units)."""
    seeds = [int(seed)] * batch if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch} rows")
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def end_of_word_choice(logits: Tensor, log_survival: Tensor, end_ids: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Median boundary rule: end the word once the decoder's own probability of having ended it reaches 1/2.

    logits: [B, V] constrained (-inf = forbidden); log_survival: [B], log P(word still running) before this step;
    end_ids: (BND, EOS). Returns (end Bool[B], the updated log survival [B]).
    The end probability at this step is p(BND) + p(EOS) (the constraints allow at most one of them), so the word ends
    at the median of the duration distribution the decoder predicts, rather than at a sampled duration."""
    probs = torch.softmax(logits.float(), dim=-1)
    p_end = (probs[:, end_ids[0]] + probs[:, end_ids[1]]).clamp(0.0, 1.0)
    new_log_survival = log_survival + torch.log1p(-p_end.clamp(max=1.0 - 1e-7))
    end = (p_end >= 1.0 - 1e-6) | (new_log_survival <= -math.log(2.0))
    return end, new_log_survival


class UnitDecoder(nn.Module):
    """(subword text, optional word vectors, speaker) -> unit stream. Token ids: units 0..n-1, BND n, EOS n+1."""

    def __init__(self, cfg: DecoderConfig, conditioning: str, text_vocab: int, taste_dim: int) -> None:
        super().__init__()
        self.cfg, self.conditioning = cfg, conditioning
        d = cfg.d_model
        self.bnd, self.eos, self.n_out = cfg.n_units, cfg.n_units + 1, cfg.n_units + 2
        self.text_emb = nn.Embedding(text_vocab, d)
        self.text_pos = nn.Embedding(cfg.max_tokens, d)
        self.text_branch = _branch(d, cfg.n_heads, cfg.branch_layers, cfg.dropout)
        self.taste_proj = nn.Linear(taste_dim, d)
        if cfg.taste_context == "word":  # per word: no attention across words
            self.taste_branch = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout),
                                              nn.Linear(2 * d, d))
        else:
            self.taste_branch = _branch(d, cfg.n_heads, cfg.branch_layers, cfg.dropout)
        self.fusion_logits = nn.Parameter(torch.zeros(2))  # softmax-weighted sum of text and TASTE branches
        self.word_pos = nn.Embedding(cfg.max_words, d)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, d)
        self.task = nn.Parameter(torch.randn(d) * 0.02)
        self.token_emb = nn.Embedding(self.n_out, d)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.in_word_emb = nn.Embedding(cfg.max_word_units, d)
        self.blocks = nn.ModuleList(CausalBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, self.n_out)
        if cfg.length_head:  # unit count of the word opened at a BND (classes 0..max_word_units-1; 0 never a target)
            self.length_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.max_word_units))
            self.remaining_emb = nn.Embedding(cfg.max_word_units, d)

    @property
    def has_length_head(self) -> bool:
        return bool(self.cfg.length_head)

    # -- conditioning -------------------------------------------------------------------------------
    def condition(self, token_ids: Tensor, word_index: Tensor, n_words: Tensor,
                  taste: Tensor | None) -> tuple[Tensor, Tensor]:
        """token_ids, word_index: Long[B, L] (-1 = pad); n_words: Long[B]; taste: [B, N, taste_dim] or None (text-only).
        Returns (fused word vectors [B, N, d], word_mask Bool[B, N])."""
        n_max = int(n_words.max())
        if n_max > self.cfg.max_words:
            raise ValueError(f"{n_max} words; the decoder takes at most {self.cfg.max_words}")
        pos = torch.arange(token_ids.shape[1], device=token_ids.device)
        h = self.text_emb(token_ids.clamp(min=0)) + self.text_pos(pos)
        h = self.text_branch(h, src_key_padding_mask=token_ids < 0)
        text_words, word_mask = pool_words(h, word_index, n_max)
        word_pos = self.word_pos(torch.arange(n_max, device=h.device))
        if taste is None:
            return text_words + word_pos, word_mask
        if self.cfg.taste_context == "word":
            t = self.taste_branch(self.taste_proj(taste)) * word_mask.unsqueeze(-1)
        else:
            t = self.taste_branch(self.taste_proj(taste) + word_pos, src_key_padding_mask=~word_mask)
        w = torch.softmax(self.fusion_logits, dim=0)
        return w[0] * text_words + w[1] * t + word_pos, word_mask

    def _prefix(self, fused: Tensor, word_mask: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor]:
        """Prefix embeddings [B, P, d] and validity [B, P]: [speaker] or [speaker, words..., task]."""
        spk = self.speaker_proj(speaker).unsqueeze(1)
        ones = torch.ones(fused.shape[0], 1, dtype=torch.bool, device=fused.device)
        if self.conditioning == "word_sync":
            return spk, ones
        task = self.task.expand(fused.shape[0], 1, -1)
        return torch.cat([spk, fused, task], dim=1), torch.cat([ones, word_mask, ones], dim=1)

    def _token_inputs(self, tokens: Tensor, fused: Tensor, word: Tensor, in_word: Tensor,
                      word_len: Tensor | None = None) -> Tensor:
        """Embeddings of stream tokens [B, S]; word_sync adds the current word's vector and in-word position; with
        the length head, unit positions also get how many units of their word remain (word_len - in_word; a BND
        position gets none, so the head that reads it never sees the length it predicts)."""
        x = self.token_emb(tokens.clamp(min=0))
        if self.conditioning == "word_sync":
            idx = word.clamp(min=0, max=fused.shape[1] - 1)
            cur = fused.gather(1, idx.unsqueeze(-1).expand(-1, -1, fused.shape[-1]))
            x = x + self.in_word_emb(in_word) + cur * (word >= 0).unsqueeze(-1)
        if self.has_length_head:  # a word longer than the head's classes (teacher forcing only) gets no count
            fits = word_len < self.cfg.max_word_units
            remaining = (word_len - in_word).clamp(min=0, max=self.cfg.max_word_units - 1)
            x = x + self.remaining_emb(remaining) * ((in_word > 0) & (word >= 0) & fits).unsqueeze(-1)
        return x

    def _hidden(self, x: Tensor, key_valid: Tensor, caches: list[dict] | None = None) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, key_valid, None if caches is None else caches[i])
        return self.ln_f(x)

    def _run(self, x: Tensor, key_valid: Tensor, caches: list[dict] | None = None) -> Tensor:
        return self.head(self._hidden(x, key_valid, caches))

    def length_logits(self, hidden: Tensor) -> Tensor:
        """Decoder states [..., d] at BND positions -> logits over the opened word's unit count [..., max_word_units]
        (count 0 is impossible and masked)."""
        logits = self.length_mlp(hidden)
        return torch.cat([torch.full_like(logits[..., :1], float("-inf")), logits[..., 1:]], dim=-1)

    def choose_lengths(self, hidden: Tensor, median: bool, gen: Sequence[torch.Generator]) -> Tensor:
        """[B, d] states at a BND -> Long[B] unit counts: the median of the head's distribution (median boundary
        rule, the analogue of end_of_word_choice) or a sample from it, row i drawing from gen[i] (so pass only the
        rows that opened a word: a row's random stream must not depend on its batch-mates)."""
        probs = torch.softmax(self.length_logits(hidden).float(), dim=-1)
        if median:
            return (probs.cumsum(-1) < 0.5).sum(-1).clamp(min=1, max=self.cfg.max_word_units - 1)
        return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, gen)])

    # -- teacher forcing ---------------------------------------------------------------------------
    def forward(self, fused: Tensor, word_mask: Tensor, speaker: Tensor, stream: Tensor,
                return_lengths: bool = False) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """stream: Long[B, S] target tokens (-1 = pad). Returns logits [B, S, n_units + 2]; logits[:, i] predicts stream[:, i].

        return_lengths (length head only): also (length logits [B, S - 1, max_word_units] at every input position,
        length targets Long[B, S - 1]: the unit count of the word each input BND opens, -1 elsewhere and for a
        word of max_word_units units or more)."""
        prefix, valid = self._prefix(fused, word_mask, speaker)
        inputs = stream[:, :-1]
        word, in_word = stream_word_features(inputs, self.bnd, self.cfg.max_word_units)
        word_len = stream_word_lengths(stream, self.bnd)[:, :-1] if self.has_length_head else None
        x = torch.cat([prefix, self._token_inputs(inputs, fused, word, in_word, word_len)], dim=1)
        valid = torch.cat([valid, inputs >= 0], dim=1)
        pos = (torch.cumsum(valid.long(), dim=1) - 1).clamp(min=0)
        if int(pos.max()) >= self.cfg.max_len:
            raise ValueError(f"sequence of {int(pos.max()) + 1} positions exceeds decoder max_len {self.cfg.max_len}")
        hidden = self._hidden(x + self.pos_emb(pos), valid)
        logits = self.head(hidden)[:, prefix.shape[1] - 1 :]
        if not return_lengths:
            return logits
        if not self.has_length_head:
            raise ValueError("return_lengths needs a decoder with length_head")
        # a word of more units than the head's classes (generation never makes one) is no target
        opens = (inputs == self.bnd) & (word_len < self.cfg.max_word_units)
        targets = torch.where(opens, word_len, torch.full_like(word_len, -1))
        return logits, self.length_logits(hidden[:, prefix.shape[1]:]), targets

    # -- sampling ----------------------------------------------------------------------------------
    def _constrain(self, logits: Tensor, n_words: Tensor, done: Tensor, in_word: Tensor, n_units: Tensor,
                   finished: Tensor, word_len: Tensor | None = None) -> Tensor:
        """Mask forbidden tokens. word_sync: BND first, no empty words, no EOS before all words, no BND after;
        with the length head, a word ends exactly after its chosen `word_len` units;
        prefix: EOS only within [min_len_ratio, max_len_ratio] x words."""
        allow = torch.ones_like(logits, dtype=torch.bool)
        units_ok, bnd_ok, eos_ok = allow[:, : self.bnd], allow[:, self.bnd], allow[:, self.eos]
        if self.conditioning == "word_sync":
            started = done > 0
            capped = in_word >= self.cfg.max_word_units - 1
            if word_len is not None:
                capped = capped | (in_word >= word_len)
                bnd_ok &= capped | ~started
                eos_ok &= capped
            units_ok &= (started & ~capped).unsqueeze(-1)
            bnd_ok &= (done < n_words) & ((in_word > 0) | ~started)
            eos_ok &= (done >= n_words) & (in_word > 0)
        else:
            bnd_ok &= False
            eos_ok &= n_units >= (self.cfg.min_len_ratio * n_words).long()
            units_ok &= (n_units < (self.cfg.max_len_ratio * n_words).long()).unsqueeze(-1)
        allow[finished] = False
        allow[finished, self.eos] = True
        return logits.masked_fill(~allow, float("-inf"))

    @torch.no_grad()
    def _next_tokens(self, logits: Tensor, log_survival: Tensor, k: int, median: bool,
                     gen: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
        """One decoding step on constrained logits [B, V] -> (tokens Long[B], log survival [B] of the current word).

        median: word ends (BND / EOS) follow `end_of_word_choice`; units are sampled top-k among units only."""
        if not median:
            return sample_top_k(logits, k, gen), log_survival
        end, log_survival = end_of_word_choice(logits, log_survival, (self.bnd, self.eos))
        end_tok = torch.where(logits[:, self.bnd] > logits[:, self.eos], self.bnd, self.eos)
        unit_logits = logits.clone()
        unit_logits[:, self.bnd :] = float("-inf")
        units_possible = torch.isfinite(unit_logits).any(-1)
        unit_tok = sample_top_k(unit_logits.masked_fill(~units_possible[:, None], 0.0), k, gen)
        tok = torch.where(end | ~units_possible, end_tok, unit_tok)
        return tok, torch.where(tok >= self.bnd, torch.zeros_like(log_survival), log_survival)

    def _open_decode(self, fused: Tensor, word_mask: Tensor, speaker: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor, list[dict]]:
        """The prefix pass of a decode -> (logits [B, V] of the first token, key validity [B, P], next position [B],
        the filled KV caches)."""
        prefix, valid = self._prefix(fused, word_mask, speaker)
        pos = (torch.cumsum(valid.long(), 1) - 1).clamp(min=0)
        caches: list[dict] = [{} for _ in self.blocks]
        logits = self._run(prefix + self.pos_emb(pos), valid, caches)[:, -1]
        return logits, valid, valid.sum(1), caches

    def _step_limit(self, n_words: Tensor, next_pos: Tensor) -> int:
        if self.conditioning == "word_sync":
            limit = int(n_words.max()) * self.cfg.max_word_units + 1
        else:
            limit = int(self.cfg.max_len_ratio * int(n_words.max())) + 1
        return min(limit, self.cfg.max_len - int(next_pos.max()))

    @torch.no_grad()
    def generate(self, fused: Tensor, word_mask: Tensor, speaker: Tensor, *, seed: int | Sequence[int] = 0,
                 top_k: int | None = None, boundary: str | None = None) -> list[list[int]]:
        """Batched KV-cached decoding. fused: [B, N, d]; speaker: [B, speaker_dim] -> one stream per row (EOS excluded).

        Units are sampled top-k; word ends follow `boundary` (default: the config's), see `end_of_word_choice`, or,
        with the length head, the unit count it chose at the word's BND. The prefix mode has no word ends to place
        and always samples. seed: see `row_generators` (each row samples from its own generator, so a row's units
        do not depend on the batch it is decoded in)."""
        b, device = fused.shape[0], fused.device
        gen = row_generators(seed, b, device)
        k = self.cfg.top_k if top_k is None else top_k
        median = (boundary or self.cfg.boundary) == "median" and self.conditioning == "word_sync"
        n_words = word_mask.sum(1)
        logits, valid, next_pos, caches = self._open_decode(fused, word_mask, speaker)
        state = _DecodeState.start(b, device, self.has_length_head)
        out: list[list[int]] = [[] for _ in range(b)]
        for _ in range(self._step_limit(n_words, next_pos)):
            allowed = self._constrain(logits, n_words, state.done, state.in_word, state.n_units, state.finished,
                                      state.word_len)
            # with the length head the constraints already place every word end: units are plain top-k samples
            tok, state.log_survival = self._next_tokens(allowed, state.log_survival, k,
                                                        median and state.word_len is None, gen)
            for i in torch.nonzero(~state.finished).flatten().tolist():
                if int(tok[i]) != self.eos:
                    out[i].append(int(tok[i]))
            opened = state.advance(tok, self.bnd, self.eos)
            if bool(state.finished.all()):
                break
            x = self._token_inputs(tok[:, None], fused, (state.done - 1)[:, None],
                                   state.in_word.clamp(max=self.cfg.max_word_units - 1)[:, None],
                                   None if state.word_len is None else state.word_len[:, None])
            valid = torch.cat([valid, torch.ones(b, 1, dtype=torch.bool, device=device)], dim=1)
            hidden = self._hidden(x + self.pos_emb(next_pos.clamp(max=self.cfg.max_len - 1))[:, None], valid, caches)
            logits = self.head(hidden)[:, -1]
            rows = torch.nonzero(opened).flatten()
            if state.word_len is not None and len(rows):  # a word just opened: its unit count, from its BND's state
                state.word_len = state.word_len.clone()
                state.word_len[rows] = self.choose_lengths(hidden[rows, -1], median, [gen[i] for i in rows.tolist()])
            next_pos = next_pos + 1
        return out


@dataclass
class _DecodeState:
    """Per-row progress of a decode: words begun (done), position in the current word, units so far, finished rows,
    log P(current word still running) (median rule) and, with the length head, the current word's chosen count."""

    done: Tensor
    in_word: Tensor
    n_units: Tensor
    finished: Tensor
    log_survival: Tensor
    word_len: Tensor | None

    @classmethod
    def start(cls, batch: int, device: torch.device | str, by_length: bool) -> "_DecodeState":
        zeros = [torch.zeros(batch, dtype=torch.long, device=device) for _ in range(3)]
        return cls(*zeros, torch.zeros(batch, dtype=torch.bool, device=device), torch.zeros(batch, device=device),
                   torch.zeros(batch, dtype=torch.long, device=device) if by_length else None)

    def advance(self, tok: Tensor, bnd: int, eos: int) -> Tensor:
        """Account for the tokens just chosen -> Bool[B]: the rows that opened a word (emitted BND)."""
        is_b = tok == bnd
        self.done, self.n_units = self.done + is_b.long(), self.n_units + (tok < bnd).long()
        self.in_word = torch.where(is_b, torch.zeros_like(self.in_word), self.in_word + 1)
        self.finished = self.finished | (tok == eos)
        return is_b
