"""taste.tokenizer.sampling.sample_top_k is THE top-k sampler (issue 14, section 2): the unit decoder and the S3-unit
LM both use it. It must pick the same ids AND leave every random generator in the same state as the two copies it
replaced, so that sampled units are bit-identical for the same seeds. The old copies are kept below as references."""
from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from taste.tokenizer.sampling import sample_top_k


def old_decoder_sample_top_k(logits: Tensor, k: int, generator: torch.Generator | Sequence[torch.Generator]) -> Tensor:
    """Verbatim: taste.tokenizer.unit_decoder.sample_top_k before the merge."""
    if k <= 1:
        return logits.argmax(-1)
    values, idx = logits.topk(min(k, logits.shape[-1]), dim=-1)
    probs = torch.softmax(values, dim=-1)
    if isinstance(generator, torch.Generator):
        choice = torch.multinomial(probs, 1, generator=generator)
    else:
        if len(generator) != probs.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {probs.shape[0]} rows")
        choice = torch.cat([torch.multinomial(p[None], 1, generator=g) for p, g in zip(probs, generator)])
    return idx.gather(-1, choice).squeeze(-1)


def old_lm_sample_top_k(logits: Tensor, k: int, generator: torch.Generator) -> int:
    """Verbatim: taste.lm.generate.sample_top_k before the merge."""
    top, idx = logits.float().topk(min(k, logits.numel()))
    return int(idx[torch.multinomial(torch.softmax(top, -1), 1, generator=generator)])


def new_lm_sample_top_k(logits: Tensor, k: int, generator: torch.Generator) -> int:
    """What taste.lm.generate.generate_s3 now calls."""
    return int(sample_top_k(logits.float(), k, generator, always_draw=True))


def gens(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def same_states(a: Sequence[torch.Generator], b: Sequence[torch.Generator]) -> bool:
    return all(torch.equal(x.get_state(), y.get_state()) for x, y in zip(a, b, strict=True))


def batch_logits(seed: int, b: int, v: int, dtype=torch.float32) -> Tensor:
    x = torch.randn(b, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    x[:, :: 7] = float("-inf")  # forbidden ids, as the decoder's constraints make them
    return x.to(dtype)


KS = (0, 1, 2, 5, 25, 40, 41, 1000)  # 41 = the vocabulary below, 1000 > it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", KS)
def test_decoder_path_is_bit_identical(k, dtype):
    for trial in range(20):
        logits = batch_logits(trial, 4, 41, dtype)
        # one generator for the batch
        g_old, g_new = gens([trial]), gens([trial])
        for _ in range(5):  # several draws in a row: the generator must advance alike
            assert torch.equal(old_decoder_sample_top_k(logits, k, g_old[0]), sample_top_k(logits, k, g_new[0]))
        assert same_states(g_old, g_new)
        # one generator per row
        seeds = [trial, trial + 100, trial, 7]
        g_old, g_new = gens(seeds), gens(seeds)
        for _ in range(5):
            assert torch.equal(old_decoder_sample_top_k(logits, k, g_old), sample_top_k(logits, k, g_new))
        assert same_states(g_old, g_new)


def test_decoder_path_k1_is_greedy_and_leaves_generators_untouched():
    logits = batch_logits(3, 4, 41)
    g, fresh = gens([1, 2, 3, 4]), gens([1, 2, 3, 4])
    assert torch.equal(sample_top_k(logits, 1, g), logits.argmax(-1))
    assert same_states(g, fresh)


def test_decoder_path_generator_count_error_unchanged():
    logits = batch_logits(0, 4, 41)
    with pytest.raises(ValueError, match="3 generators for a batch of 4 rows"):
        old_decoder_sample_top_k(logits, 10, gens([1, 2, 3]))
    with pytest.raises(ValueError, match="3 generators for a batch of 4 rows"):
        sample_top_k(logits, 10, gens([1, 2, 3]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("k", (1, 2, 5, 25, 27, 28, 1000))  # 27 = the S3 LM's n_units + 2 below; 1000 > it
def test_lm_path_is_bit_identical(k, dtype):
    for trial in range(20):
        g_old, g_new = gens([trial]), gens([trial])
        for step in range(10):
            logits = torch.randn(27, generator=torch.Generator().manual_seed(1000 * trial + step)).to(dtype) * 4
            old, new = old_lm_sample_top_k(logits, k, g_old[0]), new_lm_sample_top_k(logits, k, g_new[0])
            assert type(new) is int and old == new
        assert same_states(g_old, g_new)  # k = 1 included: the LM always draws, so its generator advances


def test_lm_path_k1_still_draws():
    logits = torch.randn(27, generator=torch.Generator().manual_seed(0))
    g, fresh = gens([5]), gens([5])
    assert new_lm_sample_top_k(logits, 1, g[0]) == int(logits.argmax())
    assert not same_states(g, fresh)


@pytest.mark.parametrize("k", (0, -1))
def test_lm_path_bad_k_raises_as_before(k):
    logits = torch.randn(27)
    with pytest.raises(RuntimeError) as old:
        old_lm_sample_top_k(logits, k, gens([0])[0])
    with pytest.raises(RuntimeError) as new:
        new_lm_sample_top_k(logits, k, gens([0])[0])
    assert str(old.value) == str(new.value)


def test_one_implementation():
    """Both packages use this function; the LM keeps no copy of its own."""
    import taste.lm.generate as lm_generate
    import taste.tokenizer.unit_decoder as unit_decoder

    assert unit_decoder.sample_top_k is sample_top_k and lm_generate.sample_top_k is sample_top_k
