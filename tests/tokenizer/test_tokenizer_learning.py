"""The word-synchronous decoder learns word durations from the word vectors (and cannot without them).

A toy task: each word's units are fixed by its identity, its DURATION only by a number in its TASTE vector.
After a short training, generated per-word durations must follow the vectors; text-only must not."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taste.tokenizer.config import DecoderConfig
from taste.tokenizer.model import pad_text
from taste.tokenizer.streams import build_stream, parse_stream
from taste.tokenizer.unit_decoder import UnitDecoder

N_UNITS = 16


def _sample(vocab, n, g):
    texts, durs = [], []
    for _ in range(n):
        k = int(torch.randint(2, 5, (1,), generator=g))
        texts.append(" ".join(vocab[int(i)] for i in torch.randint(0, len(vocab), (k,), generator=g)))
        durs.append(torch.randint(2, 9, (k,), generator=g).tolist())
    return texts, durs


def _batch(bpe, texts, durs):
    from taste.asr.bpe import word_ids

    tb = pad_text([word_ids(bpe, t) for t in texts])
    taste = torch.zeros(len(texts), int(tb.n_words.max()), 4)
    streams = []
    for i, (t, d) in enumerate(zip(texts, durs)):
        taste[i, : len(d), 0] = torch.tensor(d, dtype=torch.float) / 5
        units, bounds = [], []
        for j, (w, k) in enumerate(zip(t.split(), d)):
            bounds.append(len(units))
            units += [(sum(map(ord, w)) + j) % N_UNITS] * k
        streams.append(build_stream(units, bounds, "word_sync", N_UNITS))
    stream = torch.full((len(texts), max(map(len, streams))), -1)
    for i, s in enumerate(streams):
        stream[i, : len(s)] = torch.tensor(s)
    return tb, taste, stream


def _train_and_measure(bpe, use_taste: bool, steps: int = 150, length_head: bool = False) -> float:
    torch.manual_seed(0)
    vocab = ["the", "cat", "sat", "on", "mat", "dog", "fox", "sea"]
    cfg = DecoderConfig(n_units=N_UNITS, d_model=32, layers=1, n_heads=2, max_len=128, max_word_units=16,
                        max_words=8, max_tokens=32, dropout=0.0, length_head=length_head)
    dec = UnitDecoder(cfg, "word_sync", bpe.get_vocab_size(), 4)
    opt = torch.optim.AdamW(dec.parameters(), 3e-3)
    g, spk = torch.Generator().manual_seed(0), torch.zeros(16, 256)
    for _ in range(steps):
        tb, taste, stream = _batch(bpe, *_sample(vocab, 16, g))
        fused, mask = dec.condition(tb.token_ids, tb.word_index, tb.n_words, taste if use_taste else None)
        if length_head:
            logits, length_logits, length_targets = dec(fused, mask, spk, stream, return_lengths=True)
            loss = F.cross_entropy(length_logits.transpose(1, 2), length_targets, ignore_index=-1)
        else:
            logits, loss = dec(fused, mask, spk, stream), 0.0
        loss = loss + F.cross_entropy(logits.transpose(1, 2), stream, ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    texts, durs = _sample(vocab, 32, torch.Generator().manual_seed(99))
    tb, taste, _ = _batch(bpe, texts, durs)
    fused, mask = dec.condition(tb.token_ids, tb.word_index, tb.n_words, taste if use_taste else None)
    out = dec.generate(fused, mask, torch.zeros(32, 256), seed=0)
    ref = np.concatenate([d for d in durs])
    hyp = np.concatenate([parse_stream(s, N_UNITS)[1] for s in out])
    assert ref.shape == hyp.shape  # exactly one boundary per word, always
    return float(np.corrcoef(ref, hyp)[0, 1]) if hyp.std() > 0 else 0.0


@pytest.mark.slow
def test_generated_durations_follow_word_vectors(bpe):
    r_taste, r_text = _train_and_measure(bpe, True), _train_and_measure(bpe, False)
    assert r_taste > 0.8, r_taste
    assert r_taste > r_text + 0.4, (r_taste, r_text)


@pytest.mark.slow
def test_length_head_learns_durations_from_word_vectors(bpe):
    # the head reads the word's own vector at its BND: durations follow the vectors, and not from text alone
    r_taste, r_text = _train_and_measure(bpe, True, length_head=True), _train_and_measure(bpe, False, length_head=True)
    assert r_taste > 0.8, r_taste
    assert r_taste > r_text + 0.4, (r_taste, r_text)
