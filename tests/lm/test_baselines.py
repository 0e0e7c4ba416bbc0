"""Text LM pretraining pieces, the S3-unit LM baseline and the cascade's text continuation."""

import copy
import json
import math

import pytest
import torch
from fakes import SENTENCES, fake_units
from transformers import LlamaForCausalLM

from taste.lm import text_lm
from taste.lm.data import S3Dataset, collate_s3
from taste.lm.generate import Sampling, generate_s3, generate_text
from taste.lm.s3_lm import S3LMConfig, S3UnitLM, s3_loss


def test_vocab_reuses_tokenizer_specials(bpe, vocab):
    assert vocab.bos == bpe.token_to_id("<|startoftranscript|>")
    assert vocab.eos == bpe.token_to_id("<|endoftext|>")
    assert vocab.size == bpe.get_vocab_size()


def test_text_pool_packing_and_perplexity(tmp_path, bpe, vocab, tiny_lm):
    pool = tmp_path / "text_pool.txt"
    pool.write_text("\n".join(SENTENCES[:4]) + "\n\n" + "\n".join(SENTENCES[4:]) + "\n")
    stories = text_lm.read_text_pool(pool)
    assert [len(s) for s in stories] == [4, 4]
    train, held = text_lm.split_stories(stories, heldout_share=0.5)
    assert len(train) == len(held) == 1
    ds = text_lm.PackedTextDataset(bpe, stories, vocab, context=16)
    assert ds[0][0] == vocab.bos and ds.blocks.shape[1] == 16
    before = text_lm.perplexity(tiny_lm, ds)
    assert before > vocab.size / 4  # a random model is close to uniform
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-2)
    for _ in range(30):
        loss, _ = text_lm.text_lm_loss(tiny_lm, text_lm.collate_blocks([ds[i] for i in range(len(ds))]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = text_lm.perplexity(tiny_lm, ds)
    assert after < before / 3
    assert math.isclose(math.log(after), float(text_lm.text_lm_loss(tiny_lm, {"input_ids": ds.blocks})[0].detach()), rel_tol=1e-3)


def test_text_pool_errors(tmp_path, bpe, vocab):
    with pytest.raises(FileNotFoundError, match="text pool"):
        text_lm.read_text_pool(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        text_lm.read_text_pool(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="block"):
        text_lm.PackedTextDataset(bpe, [["the cat"]], vocab, context=64)


def test_s3_text_padded_to_unit_length(utts, bpe, vocab):
    units = fake_units(utts)
    ds = S3Dataset(utts, units, bpe, vocab, n_units=16)
    ex = ds[0]
    n_tok = len(bpe.encode(utts[0].text).ids)
    assert len(ex.unit_ids) == len(ex.text_ids) == len(units["u0"]) + 2
    assert ex.text_ids[0] == vocab.bos and ex.text_ids[n_tok + 1] == vocab.eos
    assert (ex.text_ids[n_tok + 2:] == vocab.pad).all()
    with pytest.raises(ValueError, match="n_units"):
        S3Dataset(utts, units, bpe, vocab, n_units=4)


def test_s3_overfit_and_round_trip(utts, bpe, vocab, tiny_lm, tmp_path):
    ds = S3Dataset(utts, fake_units(utts), bpe, vocab, n_units=16)
    batch = collate_s3([ds[i] for i in range(4)], vocab.pad, 16)
    model = S3UnitLM(tiny_lm, S3LMConfig(n_units=16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    logs0 = None
    for _ in range(25):
        loss, logs = s3_loss(model, batch)
        logs0 = logs0 or logs
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["unit_ce"] < logs0["unit_ce"] and logs["text_ce"] < logs0["text_ce"]
    model.eval().save_pretrained(tmp_path / "s3")
    loaded = S3UnitLM.from_pretrained(tmp_path / "s3")
    with torch.no_grad():
        a, b = model(batch["unit_ids"], batch["text_ids"])[0], loaded(batch["unit_ids"], batch["text_ids"])[0]
    assert torch.allclose(a, b, atol=1e-5)


def test_s3_lora_saves_adapters_and_loads_over_its_base(utts, bpe, vocab, tmp_path):
    from safetensors import safe_open

    from taste.training.saved_model import SavedModelError

    torch.manual_seed(0)
    base = text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)
    model = S3UnitLM(text_lm.apply_lora(copy.deepcopy(base), r=4, alpha=8), S3LMConfig(n_units=16, lora_r=4, lora_alpha=8))
    ds = S3Dataset(utts, fake_units(utts), bpe, vocab, n_units=16)
    batch = collate_s3([ds[i] for i in range(4)], vocab.pad, 16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        loss, _ = s3_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(tmp_path / "s3")
    keys = set(safe_open(str(tmp_path / "s3/model.safetensors"), "pt").keys())
    assert {"unit_embedding.weight", "unit_head.weight"} <= keys and all(not k.startswith("lm.") or "lora_" in k for k in keys)
    text_lm.save_text_lm(base, tmp_path / "base")  # the base as stage lm_pretrain saves and a later stage reloads it
    reloaded_base = LlamaForCausalLM.from_pretrained(tmp_path / "base", local_files_only=True)
    loaded = S3UnitLM.from_pretrained(tmp_path / "s3", base_lm=reloaded_base)
    with torch.no_grad():
        a, b = model(batch["unit_ids"], batch["text_ids"])[0], loaded(batch["unit_ids"], batch["text_ids"])[0]
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(SavedModelError, match="base_lm"):
        S3UnitLM.from_pretrained(tmp_path / "s3")
    other = text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)
    with pytest.raises(SavedModelError, match="not the one"):
        S3UnitLM.from_pretrained(tmp_path / "s3", base_lm=other)
    config = json.loads((tmp_path / "s3/config.json").read_text())
    del config["base_lm_digest"]  # a LoRA folder written before adapter-only saving
    (tmp_path / "s3/config.json").write_text(json.dumps(config))
    with pytest.raises(SavedModelError, match="saved before adapter-only saving"):
        S3UnitLM.from_pretrained(tmp_path / "s3", base_lm=reloaded_base)


def test_base_digest_is_the_base_llamas_own_and_sees_one_changed_weight(vocab):
    from taste.lm.adapters import base_digest

    torch.manual_seed(0)
    base = text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)
    wrapped = text_lm.apply_lora(copy.deepcopy(base), r=4, alpha=8)
    assert base_digest(wrapped) == base_digest(base)  # peft's wrapping names and the adapters do not count
    with torch.no_grad():
        next(p for n, p in wrapped.named_parameters() if "lora_B" in n).add_(1.0)
    assert base_digest(wrapped) == base_digest(base)
    with torch.no_grad():
        base.model.layers[0].mlp.down_proj.weight[0, 0] += 1e-3
    assert base_digest(wrapped) != base_digest(base)


@pytest.mark.parametrize("max_units", [5, 30])
def test_s3_generation_lengths(utts, bpe, vocab, tiny_lm, max_units):
    model = S3UnitLM(tiny_lm, S3LMConfig(n_units=16)).eval()
    prompt_units = fake_units(utts)["u0"][:12]
    gen = generate_s3(model, bpe, vocab, "the cat", prompt_units, 3, max_units, Sampling(),
                      torch.Generator().manual_seed(0))
    assert len(gen.units) <= max_units
    assert ((gen.units >= 0) & (gen.units < 16)).all()
    # One forward step per position after the prefill (the prompt's text is shorter than its units).
    n_prefill = 1 + len(bpe.encode("the cat").ids)
    assert gen.lm_steps == (len(prompt_units) + 1 - n_prefill) + len(gen.units)
    assert len(gen.text.split()) <= 3


@pytest.mark.parametrize("target_words", [1, 4])
def test_text_continuation_length(bpe, vocab, tiny_lm, target_words):
    gen = generate_text(tiny_lm, bpe, vocab, "the cat", target_words, Sampling(), torch.Generator().manual_seed(0))
    capped = gen.lm_steps >= target_words * Sampling().max_tokens_per_word - 1
    assert len(gen.text.split()) == target_words or capped


def test_paper_profile_loads_local_llama(tmp_path, bpe, vocab, monkeypatch):
    """pretrained_path: the local Llama and its own tokenizer are used as they are, nothing is trained or copied."""
    from taste.lm.pipeline import load_text_lm, pretrain_text_lm

    llama = tmp_path / "llama"
    torch.manual_seed(0)
    text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab).save_pretrained(llama)
    bpe.save(str(llama / "tokenizer.json"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "text_pool.txt").write_text("\n\n".join(SENTENCES) + "\n")
    params = {"shared": {"seed": 0, "paths": {"raw": str(tmp_path / "raw"), "models": str(tmp_path / "models"),
                                              "outputs": str(tmp_path / "outputs")}},
              "lm": {"text_lm": {"pretrained_path": str(llama), "context": 8, "heldout_share": 0.25, "heldout_blocks": 200,
                                 "train": {"steps": 1}}}}
    run = pretrain_text_lm(params, progress=False)
    assert run.result is None and run.heldout_ppl > 1
    assert not (tmp_path / "models/lm_pretrain/text_lm/model.safetensors").exists()
    model, tok, loaded_vocab = load_text_lm(tmp_path / "models/lm_pretrain/text_lm")
    assert loaded_vocab == run.vocab and tok.get_vocab_size() == bpe.get_vocab_size()
    ids = torch.randint(0, vocab.size, (1, 5))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, run.model(input_ids=ids).logits)


def test_first_generated_token_starts_a_new_word(bpe, vocab, tiny_lm):
    """The prompt ends on a word boundary: the continuation never glues a subword onto its last word."""
    from taste.lm.generate import _WordCounter

    counter = _WordCounter(bpe, vocab, bpe.encode("the cat").ids)
    banned = set(counter.non_starters())
    assert banned and all(not counter.starts_word(i) for i in banned)
    assert all(counter.starts_word(i) for i in range(vocab.base_size) if i not in banned
               and bpe.id_to_token(i).startswith("▁"))
    for seed in range(5):
        gen = generate_text(tiny_lm, bpe, vocab, "the cat", 2, Sampling(top_p=1.0, temperature=2.0),
                            torch.Generator().manual_seed(seed))
        full = bpe.decode(bpe.encode("the cat").ids) + " " + gen.text
        assert full.split()[:2] == ["the", "cat"]


@pytest.mark.parametrize("unit_top_k", [1, 5])
def test_s3_generation_samples_units_as_before_the_sampler_merge(utts, bpe, vocab, tiny_lm, monkeypatch, unit_top_k):
    """generate_s3's own call of the shared top-k sampler (issue 14) draws exactly as the LM's old private sampler
    did: float logits, and one draw even at k = 1 (the text sampler shares the generator, so a skipped draw would
    change every later text token too)."""
    import taste.lm.generate as G
    from taste.lm.generate import Sampling

    def old_lm_sample_top_k(logits, k, generator, **_):  # verbatim body of taste.lm.generate.sample_top_k before
        top, idx = logits.float().topk(min(k, logits.numel()))
        return torch.tensor(int(idx[torch.multinomial(torch.softmax(top, -1), 1, generator=generator)]))

    model = S3UnitLM(tiny_lm, S3LMConfig(n_units=16)).eval()
    prompt_units = fake_units(utts)["u0"][:12]
    s = Sampling(unit_top_k=unit_top_k)

    def generate():
        return generate_s3(model, bpe, vocab, "the cat", prompt_units, 4, 20, s, torch.Generator().manual_seed(3))

    now = generate()
    monkeypatch.setattr(G, "sample_top_k", old_lm_sample_top_k)
    before = generate()
    assert torch.equal(now.units, before.units) and now.text == before.text and len(now.units) > 0
