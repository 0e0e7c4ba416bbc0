"""TASLM: fusion init, both heads learn on a tiny overfit, save/load round trip, generation, LoRA path."""

import math

import pytest
import torch
from fakes import word_ids
from safetensors import safe_open

from taste.lm import taslm as T
from taste.lm import text_lm
from taste.lm.data import TASLMDataset, build_taslm_example, collate_taslm
from taste.lm.generate import Sampling, generate_taslm
from taste.training.saved_model import SavedModelError


def make(tiny_lm, variant, **kw):
    return T.TASLM(tiny_lm, T.TASLMConfig(variant=variant, n_q=2, codebook_size=16, taste_dim=16, **kw))


@pytest.fixture
def batch(utts, codes, bpe, vocab, codebook):
    ds = TASLMDataset(utts, codes, bpe, vocab, codebook.codes_to_vectors, word_ids)
    return collate_taslm([ds[i] for i in range(4)], vocab.pad)


def test_fusion_starts_text_dominant(tiny_lm, batch):
    model = make(tiny_lm, "token")
    w = model.fusion_weights()
    assert torch.allclose(w, torch.softmax(torch.tensor([-2.0, 2.0]), 0))
    assert w[1] > 0.98
    ids, vec, has = batch["input_ids"], batch["taste_vectors"], batch["has_taste"]
    text = tiny_lm.get_input_embeddings()(ids)
    expected = w[0] * model.taste_in(vec) * has.unsqueeze(-1) + w[1] * text
    assert torch.allclose(model.embed(ids, vec, has), expected, atol=1e-6)


@pytest.mark.parametrize("variant", ["token", "embed"])
def test_losses_finite_and_decrease_on_overfit(tiny_lm, batch, variant):
    model = make(tiny_lm, variant)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(25):
        loss, logs = T.taslm_loss(model, batch)
        assert all(math.isfinite(v) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((float(loss.detach()), logs))
    taste_key = "taste_ce" if variant == "token" else "taste_mse"
    assert history[-1][1][taste_key] < 0.5 * history[0][1][taste_key]
    assert history[-1][1]["text_ce"] < history[0][1]["text_ce"]
    assert history[0][1]["text_kl"] < 0.05  # the model starts as the frozen LM (text-dominant fusion)


@pytest.mark.parametrize("variant", ["token", "embed"])
def test_save_load_round_trip(tiny_lm, batch, variant, tmp_path):
    model = make(tiny_lm, variant).eval()
    with torch.no_grad():
        model.fusion.add_(0.3)  # a non-initial value must survive the round trip
    model.save_pretrained(tmp_path / "m")
    loaded = T.TASLM.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    args = (batch["input_ids"], batch["taste_vectors"], batch["has_taste"], batch["attention_mask"])
    with torch.no_grad():
        a, b = model(*args), loaded(*args)
    assert torch.allclose(a.text_logits, b.text_logits, atol=1e-5)
    assert torch.allclose(a.hidden, b.hidden, atol=1e-5)


def test_from_pretrained_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        T.TASLM.from_pretrained(tmp_path)


def test_bad_variant():
    with pytest.raises(ValueError, match="variant"):
        T.TASLMConfig(variant="waveform")


@pytest.mark.parametrize("variant", ["token", "embed"])
@pytest.mark.parametrize("target_words", [1, 3, 5])
def test_generation_lengths_and_codes(tiny_lm, bpe, vocab, codebook, codes, variant, target_words):
    model = make(tiny_lm, variant)
    gen = generate_taslm(model, codebook, bpe, vocab, word_ids, "the cat", codes["u0"][:2], target_words,
                         Sampling(top_p=0.9, temperature=1.0), torch.Generator().manual_seed(target_words))
    n_new = len(gen.text.split())
    capped = gen.lm_steps == target_words * Sampling().max_tokens_per_word
    assert n_new == target_words or (capped and n_new < target_words)
    assert gen.codes.shape == (2 + n_new, 2)
    assert torch.equal(gen.codes[:2], codes["u0"][:2])  # the prompt keeps its own codes
    n_prompt_tokens = 1 + len(word_ids(bpe, "the cat")[0])
    assert gen.lm_steps == len(gen.token_ids) - n_prompt_tokens  # one step per token fed after the prompt
    assert vocab.pad not in gen.token_ids and vocab.bos not in gen.token_ids[1:]


def test_generation_matches_teacher_forcing(tiny_lm, bpe, vocab, codebook, codes):
    """Cached step-by-step decoding feeds exactly the delay pattern's inputs: greedy codes agree with a full pass."""
    model = make(tiny_lm, "token").eval()
    gen = generate_taslm(model, codebook, bpe, vocab, word_ids, "the cat", codes["u0"][:2], 4,
                         Sampling(top_p=0.9, temperature=1.0), torch.Generator().manual_seed(1))
    n_words = gen.codes.shape[0]
    # The last word's codes are predicted where the next token would start; append that word start (eos).
    ids, wi = gen.token_ids + [vocab.eos], gen.word_index + [n_words]
    ex = build_taslm_example(ids, wi, gen.codes, codebook.codes_to_vectors(gen.codes), 1)
    with torch.no_grad():
        out = model(ex.input_ids[None], ex.taste_vectors[None], ex.has_taste[None])
        greedy = model.code_logits(out.hidden[0]).argmax(-1)
    positions = torch.nonzero(ex.target_codes[:, 0] != -100).flatten()
    assert len(positions) == n_words
    # Prompt word 0 is predicted inside the prompt; every generated word's codes equal the full pass's greedy ones.
    for word, t in enumerate(positions.tolist()):
        if word >= 2:
            assert torch.equal(greedy[t], gen.codes[word]), (word, t)


def test_lora_path(tmp_path, vocab, batch):
    torch.manual_seed(0)
    tiny = text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)
    tiny.save_pretrained(tmp_path / "llama")
    base = text_lm.load_pretrained_llama(tmp_path / "llama")
    lm = text_lm.apply_lora(base, r=4, alpha=8)
    model = make(lm, "token", lora_r=4, lora_alpha=8)
    assert model._frozen_lm is None  # the reference is the base model with adapters switched off
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert not any("lm." in n and "lora_" not in n for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        loss, _ = T.taslm_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    _, logs = T.taslm_loss(model, batch)
    assert logs["text_kl"] > 0  # adapters moved the model away from the frozen base
    model.save_pretrained(tmp_path / "taslm")
    # The weights file holds the adapters and TASLM's own layers, not the frozen base LM.
    saved = set(safe_open(str(tmp_path / "taslm/model.safetensors"), "pt").keys())
    assert saved and all(not k.startswith("lm.") or "lora_" in k for k in saved)
    assert any("lora_" in k for k in saved) and "fusion" in saved and any(k.startswith("code_heads.") for k in saved)
    fresh_base = text_lm.load_pretrained_llama(tmp_path / "llama")  # the base as a later session loads it
    loaded = T.TASLM.from_pretrained(tmp_path / "taslm", base_lm=fresh_base)
    args = (batch["input_ids"], batch["taste_vectors"], batch["has_taste"], batch["attention_mask"])
    with torch.no_grad():
        assert torch.allclose(model.eval()(*args).text_logits, loaded(*args).text_logits, atol=1e-5)
        assert torch.allclose(model.code_logits(model(*args).hidden), loaded.code_logits(loaded(*args).hidden),
                              atol=1e-5)
    with pytest.raises(SavedModelError, match="LoRA adapters only.*base_lm"):
        T.TASLM.from_pretrained(tmp_path / "taslm")
    other = text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)  # same shape, other weights
    with pytest.raises(SavedModelError, match="not the one"):
        T.TASLM.from_pretrained(tmp_path / "taslm", base_lm=other)


def test_load_pretrained_llama_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        text_lm.load_pretrained_llama(tmp_path)


def test_pretrained_llama_is_untied_for_checkpoints(tmp_path, vocab):
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tied = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                        tie_word_embeddings=True))
    tied.save_pretrained(tmp_path / "tied")
    model = text_lm.load_pretrained_llama(tmp_path / "tied")
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    ids = torch.randint(0, vocab.size, (1, 6))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, tied(input_ids=ids).logits, atol=1e-6)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "ckpt.safetensors"))


def test_to_device_moves_the_frozen_reference_but_keeps_it_unsaved(tiny_lm):
    model = make(tiny_lm, "token")
    keys = list(model.state_dict().keys())
    n_params = len(list(model.parameters()))
    assert model._frozen_lm is not None
    assert all(p.device.type == "cpu" for p in model._frozen_lm.parameters())
    assert model.to("meta") is model
    assert all(p.device.type == "meta" for p in model.parameters())
    assert all(t.device.type == "meta" for t in model._frozen_lm.parameters())
    assert all(t.device.type == "meta" for t in model._frozen_lm.buffers())
    assert not any(p.requires_grad for p in model._frozen_lm.parameters())  # still frozen after the move
    assert list(model.state_dict().keys()) == keys
    assert len(list(model.parameters())) == n_params
    assert "_frozen_lm" not in dict(model.named_modules())
