"""tokenizer.duration_feature (issue 13): each word vector gets an embedding of its own cross-attention width
before the RVQ; "none" (the default) leaves the model exactly as before."""

import json
import math
from dataclasses import replace

import pytest
import torch

from tk_helpers import make_tokenizer


def width_tokenizer(asr, bpe, seed=0):
    """The debug tokenizer with duration_feature=attention_width, its other weights equal to make_tokenizer's, and a
    non-zero duration projection (it starts at zero)."""
    from taste.tokenizer import TasteTokenizer

    base = make_tokenizer(asr, bpe)
    cfg = replace(base.cfg, aggregator=replace(base.cfg.aggregator, duration_feature="attention_width"))
    tk = TasteTokenizer(cfg, asr=asr, bpe=bpe, stage="rvq")
    missing, unexpected = tk.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("aggregator.duration_embed.") for k in missing) and missing
    return base, tk.eval()


def randomise_duration_projection(tk, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tk.aggregator.duration_embed.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def vectors_of(tk, mel, text):
    batch = tk.tokenize([text])
    keys, values, frames = tk.encoder_states(mel[None], torch.tensor([mel.shape[-1]]))
    with torch.no_grad():
        vectors, mask = tk.word_vectors(batch, keys, values, frames)
        _, _, attention = tk.word_vectors(batch, keys, values, frames, return_attention=True)
    return vectors[0], mask[0], attention, batch


def test_width_is_entropy_of_the_words_pooled_attention():
    from taste.tokenizer.aggregator import word_attention_width

    t = 40
    attention = torch.zeros(1, 3, t)
    attention[0, 0, 0:4] = 0.25           # word 0, one token: uniform over 4 frames -> log 4
    attention[0, 1, 10:15] = 0.2          # word 1, two tokens over 5 + 5 disjoint frames -> log 10
    attention[0, 2, 15:20] = 0.2
    word_index = torch.tensor([[0, 1, 1]])
    width = word_attention_width(attention, word_index, 3)
    assert width.shape == (1, 3)
    assert width[0, 0].item() == pytest.approx(math.log(4), abs=1e-5)
    assert width[0, 1].item() == pytest.approx(math.log(10), abs=1e-5)
    assert width[0, 2].item() == 0.0      # absent word


def test_default_is_none_and_adds_no_weights(asr, bpe):
    from taste.tokenizer.config import AggregatorConfig, TokenizerConfigError

    tk = make_tokenizer(asr, bpe)
    assert tk.cfg.aggregator.duration_feature == "none"
    assert not any("duration_embed" in k for k in tk.state_dict())
    with pytest.raises(TokenizerConfigError, match="duration_feature"):
        AggregatorConfig(duration_feature="frames")


def test_params_switch_reaches_the_config(asr):
    from taste.config import load_params
    from taste.tokenizer.config import DURATION_FEATURES, config_from_params

    params = load_params("params.yaml")
    assert params["tokenizer"]["duration_feature"] in DURATION_FEATURES
    for feature in DURATION_FEATURES:
        params["tokenizer"]["duration_feature"] = feature
        assert config_from_params(params, asr.config).aggregator.duration_feature == feature
    del params["tokenizer"]["duration_feature"]  # params.yaml is the one source: no default stands in for it
    with pytest.raises(KeyError, match="duration_feature"):
        config_from_params(params, asr.config)


def test_feature_shape_and_zero_start(asr, bpe, mel):
    base, tk = width_tokenizer(asr, bpe)
    text = "the cat sat on the mat"
    v0, m0, _, _ = vectors_of(base, mel, text)
    v1, m1, _, _ = vectors_of(tk, mel, text)
    assert v1.shape == v0.shape == (6, tk.cfg.aggregator.d_model) and torch.equal(m0, m1)
    torch.testing.assert_close(v1, v0, atol=1e-5, rtol=1e-5)  # the projection starts at zero
    randomise_duration_projection(tk)
    v2, _, _, _ = vectors_of(tk, mel, text)
    assert not torch.allclose(v2, v0, atol=1e-3)
    assert tk.encode(mel, text).codes.shape == (6, tk.cfg.rvq.n_quantizers)


def test_feature_differs_for_a_stretched_input(asr, bpe, mel):
    from taste.tokenizer.aggregator import word_attention_width

    _, tk = width_tokenizer(asr, bpe)
    randomise_duration_projection(tk)
    text = "the cat sat"
    mel = mel[:, :90]
    stretched = mel.repeat_interleave(2, dim=-1)  # 180 of the debug encoder's 200 mel frames
    widths, adds = [], []
    for m in (mel, stretched):
        vectors, _, attention, batch = vectors_of(tk, m, text)
        w = word_attention_width(attention, batch.word_index, 3)[0]
        widths.append(w)
        adds.append(tk.aggregator.duration_embed(w[None])[0])
    assert (widths[1] > widths[0]).all()          # more frames, wider attention
    assert not torch.allclose(adds[0], adds[1], atol=1e-3)


def test_save_load_round_trip(asr, bpe, mel, tmp_path):
    from taste.tokenizer import TasteTokenizer

    _, tk = width_tokenizer(asr, bpe)
    randomise_duration_projection(tk)
    tk.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["aggregator"]["duration_feature"] == "attention_width"
    loaded = TasteTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.cfg == tk.cfg
    text = "she sells sea shells"
    a, b = tk.encode(mel, text), loaded.encode(mel, text)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.vectors, b.vectors)


def test_old_config_without_the_key_loads_as_none_with_identical_outputs(asr, bpe, mel, tmp_path):
    from taste.tokenizer import TasteTokenizer

    tk = make_tokenizer(asr, bpe)
    tk.save_pretrained(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    data = json.loads(cfg_path.read_text())
    del data["aggregator"]["duration_feature"]  # a config saved before the switch existed
    cfg_path.write_text(json.dumps(data))
    loaded = TasteTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.cfg.aggregator.duration_feature == "none"
    text = "the cat sat on the mat"
    a, b = tk.encode(mel, text), loaded.encode(mel, text)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.vectors, b.vectors)
    speaker = torch.randn(256, generator=torch.Generator().manual_seed(0))
    assert tk.decode(text, a.codes, speaker, seed=0).stream == loaded.decode(text, b.codes, speaker, seed=0).stream


def test_none_forward_is_the_plain_path(asr, bpe, mel):
    """With "none" every aggregator layer runs without attention weights (the fused-attention code path from before
    the switch), and one vector per word comes out."""
    from taste.tokenizer.aggregator import pool_words

    tk = make_tokenizer(asr, bpe)
    agg = tk.aggregator
    batch = tk.tokenize(["the cat sat on the mat"])
    keys, values, frames = tk.encoder_states(mel[None], torch.tensor([mel.shape[-1]]))
    seen = []
    hooks = [layer.register_forward_hook(lambda m, args, kw_out: seen.append(isinstance(kw_out, tuple)))
             for layer in agg.layers]
    with torch.no_grad():
        vectors, _ = agg(batch.token_ids, batch.word_index, batch.n_words, keys, values, frames)
    for h in hooks:
        h.remove()
    assert seen == [False] * len(agg.layers)
    assert vectors.shape == pool_words(torch.zeros(1, batch.token_ids.shape[1], agg.cfg.d_model),
                                       batch.word_index, 6)[0].shape


def test_width_is_computed_from_detached_attention(asr, bpe, mel, monkeypatch):
    """The width is a read-out of the attention, not a training signal for it: no gradient flows through it."""
    import taste.tokenizer.aggregator as aggregator

    _, tk = width_tokenizer(asr, bpe)
    randomise_duration_projection(tk)
    seen = []
    original = aggregator.word_attention_width

    def spy(attention, word_index, n_words):
        seen.append(attention.requires_grad)
        return original(attention, word_index, n_words)

    monkeypatch.setattr(aggregator, "word_attention_width", spy)
    batch = tk.tokenize(["the cat sat on the mat"])
    keys, values, frames = tk.encoder_states(mel[None], torch.tensor([mel.shape[-1]]))
    vectors, _ = tk.word_vectors(batch, keys, values, frames)
    assert seen == [False]
    assert vectors.requires_grad  # the rest of the aggregator still trains


def test_duration_feature_draws_nothing_from_the_global_rng():
    """Same seed, with and without the feature: every shared weight is identical (no RNG confound between the
    main model and its duration_feature: none ablation row) and the global RNG ends in the same state."""
    from taste.tokenizer import TasteTokenizer
    from taste.tokenizer.config import debug_config

    base_cfg = debug_config()
    width_cfg = replace(base_cfg, aggregator=replace(base_cfg.aggregator, duration_feature="attention_width"))
    torch.manual_seed(7)
    without = TasteTokenizer(base_cfg).state_dict()
    after_without = torch.rand(3)
    torch.manual_seed(7)
    with_feature = TasteTokenizer(width_cfg).state_dict()
    after_with = torch.rand(3)
    assert set(with_feature) - set(without) == {"aggregator.duration_embed.proj.weight",
                                                "aggregator.duration_embed.proj.bias"}
    for name, tensor in without.items():
        assert torch.equal(tensor, with_feature[name]), name
    assert torch.equal(after_without, after_with)
    assert not with_feature["aggregator.duration_embed.proj.weight"].any()


def test_duration_ablation_starts_from_the_main_text_only_model(tmp_path):
    """other_duration_feature starts from the main run's finished text-only model: every shared weight is loaded,
    only the duration embedding may differ; weights of another architecture are refused, naming the folder."""
    from taste.tokenizer import TasteTokenizer
    from taste.tokenizer import pipeline as P
    from taste.tokenizer.config import debug_config

    width_cfg = debug_config()
    width_cfg = replace(width_cfg, aggregator=replace(width_cfg.aggregator, duration_feature="attention_width"))
    torch.manual_seed(1)
    main = TasteTokenizer(width_cfg, stage="text_only")
    main.save_pretrained(tmp_path / "text_only")
    (tmp_path / "text_only" / "train_info.json").write_text("{}")
    assert P.wait_for_substage(tmp_path / "text_only", 0.0) == tmp_path / "text_only"
    torch.manual_seed(2)
    ablation = P.start_from(TasteTokenizer(debug_config(), stage="text_only"), tmp_path / "text_only")
    ours = ablation.state_dict()
    assert not any("duration_embed" in k for k in ours)
    for name, tensor in ours.items():
        assert torch.equal(tensor, main.state_dict()[name]), name
    other = debug_config()
    other = replace(other, rvq=replace(other.rvq, n_quantizers=2))
    with pytest.raises(ValueError, match="text_only"):
        P.start_from(TasteTokenizer(other, stage="text_only"), tmp_path / "text_only")


def test_duration_ablation_waits_then_names_the_missing_model(tmp_path):
    from taste.tokenizer import pipeline as P

    with pytest.raises(TimeoutError, match="text_only.*ablation_wait_s"):
        P.wait_for_substage(tmp_path / "text_only", 0.05, poll_s=0.01)


def test_other_duration_feature_flips_the_params_switch():
    from taste.tokenizer import pipeline as P

    assert P.other_duration_feature({"tokenizer": {"duration_feature": "attention_width"}}) == "none"
    assert P.other_duration_feature({"tokenizer": {"duration_feature": "none"}}) == "attention_width"
