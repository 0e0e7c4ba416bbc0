"""Probes: item construction (splice vs slow reference), scorer adapters with fakes, TASLM/LM log-likelihoods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taste.data.records import PairInfo, Utterance, WordAlignment
from taste.evaluation.coherence import KneserNeyLM
from taste.evaluation.probes import (
    SAMPLE_RATE,
    LikelihoodScorer,
    ProbeUtterance,
    TaslmScorer,
    TextScorer,
    UnitScorer,
    accuracy_with_ci,
    causal_lm_loglik,
    consistency_items,
    run_probe,
    splice,
    storycloze_items,
    taslm_loglik,
)

STORIES = {
    "s1": ["anna walked to the barn", "she fed the goat some hay", "the goat ate the hay"],
    "s2": ["tom sailed from the harbour", "the boat rocked on the waves", "tom saw a whale in the sea"],
    "s3": ["the baker made fresh bread", "the bread smelled warm and sweet", "people bought the sweet bread"],
}


def _utt(uid, text, speaker="spk1", story=None, pair=None, level=0.1, word_s=0.2):
    n = len(text.split())
    words = tuple(WordAlignment(w, i * word_s, word_s) for i, w in enumerate(text.split()))
    return Utterance(uid, f"{uid}.wav", n * word_s, SAMPLE_RATE, text, speaker, "test", None, None, words,
                     story_id=story, pair=pair), level


def _loader(levels):
    def load(u):
        n = int(round(u.duration * SAMPLE_RATE))
        return ProbeUtterance(u.text, np.full(n, levels[u.id], dtype=np.float32))
    return load


def test_splice_matches_plain_slicing():
    text = "one two three four"
    a = ProbeUtterance(text, np.arange(40, dtype=np.float32))
    b = ProbeUtterance(text, -np.arange(80, dtype=np.float32))
    wa = [WordAlignment(w, i * 10 / SAMPLE_RATE, 10 / SAMPLE_RATE) for i, w in enumerate(text.split())]
    wb = [WordAlignment(w, i * 20 / SAMPLE_RATE, 20 / SAMPLE_RATE) for i, w in enumerate(text.split())]
    for k in (1, 2, 3):
        out = splice(a, wa, b, wb, k)
        assert np.array_equal(out.wav, np.concatenate([a.wav[: 10 * k], b.wav[20 * k:]]))
    with pytest.raises(ValueError, match="inside"):
        splice(a, wa, b, wb, 0)
    with pytest.raises(ValueError, match="same text"):
        splice(a, wa, ProbeUtterance("other text here now", b.wav), wb, 2)


def _story_utterances():
    rows, levels = [], {}
    for sid, sentences in STORIES.items():
        for i, s in enumerate(sentences):
            u, lv = _utt(f"{sid}_{i}", s, story=sid, speaker="spk1" if sid != "s3" else "spk2")
            rows.append(u)
            levels[u.id] = lv
    return rows, levels


def test_storycloze_with_text_lm_scorer():
    utts, levels = _story_utterances()
    index = {(sid, s): i for sid, ss in STORIES.items() for i, s in enumerate(ss)}
    items = storycloze_items(utts, lambda u: index.get((u.story_id, u.text)), _loader(levels), n=10, seed=0)
    assert len(items) == 6  # two (i, i+1) pairs per story
    short = storycloze_items(utts, lambda u: index.get((u.story_id, u.text)), _loader(levels), n=10, seed=0,
                             max_seconds=2.5)
    assert 0 < len(short) < 6
    gappy = [u for u in utts if not u.id.endswith("_1")]  # sentence 1 has no audio: 0 -> 2 is the next pair
    gappy_items = storycloze_items(gappy, lambda u: index.get((u.story_id, u.text)), _loader(levels), n=10, seed=0)
    assert len(gappy_items) == 3
    assert all(i.natural.text == f"{STORIES[i.item_id[6:8]][0]} {STORIES[i.item_id[6:8]][2]}" for i in gappy_items)
    assert all(len(i.natural.wav) <= 2.5 * SAMPLE_RATE + 1 and len(i.unnatural.wav) <= 2.5 * SAMPLE_RATE + 1
               for i in short)
    for item in items:
        assert item.natural.text.split()[:3] == item.unnatural.text.split()[:3]  # shared context
        assert item.natural.text != item.unnatural.text
    lm = KneserNeyLM().fit(" ".join(ss) for ss in STORIES.values())  # a "system" that knows the stories
    scorer = TextScorer(lambda t: lm.log_prob(t)[0])
    assert isinstance(scorer, LikelihoodScorer)
    wins = run_probe(scorer, items)
    assert wins.mean() == 1.0
    # An LM that knows nothing cannot tell the endings apart better than chance-level bookkeeping.
    blind = run_probe(TextScorer(lambda t: 0.0), items)
    assert np.all(blind == 0.5)


def _pair_utterances():
    rows, levels = [], {}
    for p, text in enumerate(["the cat sat on the mat", "a dog ran in the park today"]):
        slow, lv1 = _utt(f"p{p}_slow", text, pair=PairInfo("global_rate", f"p{p}", "slow"), level=0.1, word_s=0.3)
        fast, lv2 = _utt(f"p{p}_fast", text, pair=PairInfo("global_rate", f"p{p}", "fast"), level=0.5, word_s=0.15)
        rows += [slow, fast]
        levels.update({slow.id: lv1, fast.id: lv2})
    return rows, levels


class ConsistencyUnitLM:
    """A fake unit LM that pays -1 for every change of unit value: a mid-way switch costs it."""

    @staticmethod
    def encode(wav):
        return list(np.round(wav[:: SAMPLE_RATE // 25] * 10).astype(int))  # 25 Hz "units"

    @staticmethod
    def loglik(text, units):
        return -float(np.sum(np.diff(units) != 0)) - 0.001 * len(units)


def test_consistency_probe_with_unit_scorer():
    utts, levels = _pair_utterances()
    items = consistency_items(utts, _loader(levels), n=10, seed=0)
    assert len(items) == 4 and {i.kind for i in items} == {"rate"}
    for item in items:
        assert item.natural.text == item.unnatural.text
    scorer = UnitScorer(ConsistencyUnitLM.encode, ConsistencyUnitLM.loglik)
    assert run_probe(scorer, items).mean() == 1.0
    # A pure length preference wins one direction and loses the other: 50%.
    longer = TextScorer(lambda t: 0.0)
    length_only = UnitScorer(lambda w: [0] * len(w), lambda t, u: float(len(u)))
    assert run_probe(length_only, items).mean() == 0.5
    assert run_probe(longer, items).mean() == 0.5


def test_taslm_scorer_sums_text_and_taste():
    seen = []

    def encode(wav, text):
        seen.append(text)
        return torch.zeros(len(text.split()), 2, dtype=torch.long)

    scorer = TaslmScorer(encode, lambda text, codes: (-1.5 * codes.shape[0], -0.25))
    assert scorer.score(ProbeUtterance("a b c", np.zeros(10, np.float32))) == pytest.approx(-4.75)
    assert seen == ["a b c"]


def test_accuracy_with_ci():
    res = accuracy_with_ci(np.array([1, 1, 0, 1.0]), n_boot=100)
    assert res["accuracy"] == 0.75 and res["lo"] <= 0.75 <= res["hi"] and res["n"] == 4
    assert np.isnan(accuracy_with_ci(np.array([]))["accuracy"])


def _debug_llama(vocab=40):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_causal_lm_loglik_matches_hf_loss():
    model = _debug_llama()
    ids = [1, 5, 7, 9, 2]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert causal_lm_loglik(model, ids) == pytest.approx(-float(loss) * (len(ids) - 1), rel=1e-4)
    with pytest.raises(ValueError):
        causal_lm_loglik(model, [1])


@pytest.mark.parametrize("variant", ["token", "embed"])
def test_taslm_loglik_against_reference(variant):
    from taste.lm.data import build_taslm_example, collate_taslm
    from taste.lm.taslm import TASLM, debug_config

    cfg = debug_config(variant)
    model = TASLM(_debug_llama(), cfg, keep_reference=False).eval()
    ids, word_index = [1, 5, 6, 7, 8, 2], [-1, 0, 0, 1, 2, 3]
    codes = torch.randint(0, cfg.codebook_size, (3, cfg.n_q))
    vectors = torch.randn(3, cfg.taste_dim)
    batch = collate_taslm([build_taslm_example(ids, word_index, codes, vectors)], pad_id=0)
    text_ll, taste_ll = taslm_loglik(model, batch)
    with torch.no_grad():
        out = model(batch["input_ids"], batch["taste_vectors"], batch["has_taste"], batch["attention_mask"])
        ref_text = -F.cross_entropy(out.text_logits[0, :-1], torch.tensor(ids[1:]), reduction="sum")
        assert text_ll == pytest.approx(float(ref_text), rel=1e-4)
        h = out.hidden[batch["has_target"]]
        assert h.shape[0] == 3  # one TASTE target per word
        if variant == "token":
            logits = model.code_logits(h)
            ref = -F.cross_entropy(logits.flatten(0, 1), batch["target_codes"][batch["has_target"]].flatten(),
                                   reduction="sum")
        else:
            mean, logvar = model.vector_stats(h)
            dist = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
            ref = dist.log_prob(batch["target_vectors"][batch["has_target"]]).sum()
    assert taste_ll == pytest.approx(float(ref), rel=1e-4)


def test_s3_unit_loglik_against_reference():
    from taste.lm.data import collate_s3, s3_example
    from taste.lm.s3_lm import S3UnitLM, debug_config
    from taste.lm.text_lm import LMVocab

    cfg = debug_config()
    model = S3UnitLM(_debug_llama(), cfg).eval()
    vocab = LMVocab(base_size=30, bos=30, eos=31, pad=32)
    units = torch.tensor([3, 3, 4, 7, 1, 1, 2])
    batch = collate_s3([s3_example([5, 6], units, vocab, cfg.n_units, 100)], vocab.pad, cfg.n_units)
    from taste.evaluation.probes import s3_unit_loglik

    ll = s3_unit_loglik(model, batch)
    with torch.no_grad():
        logits, _, _ = model(batch["unit_ids"], batch["text_ids"])
    target = torch.cat([units, torch.tensor([cfg.unit_eos])])
    ref = -F.cross_entropy(logits[0, :-1], target, reduction="sum")
    assert ll == pytest.approx(float(ref), rel=1e-4)


class _FakeBPE:
    """Character-level stand-in for the study's BPE tokenizer (ids 1..26)."""

    class _Enc:
        def __init__(self, ids):
            self.ids = ids

    def encode(self, text):
        return self._Enc([ord(c) - 96 for c in text if "a" <= c <= "z"])


def test_cascade_scorer_uses_the_text_lm():
    from taste.evaluation.probes import cascade_scorer
    from taste.lm.text_lm import LMVocab

    model = _debug_llama()
    vocab = LMVocab(base_size=30, bos=30, eos=31, pad=32)
    scorer = cascade_scorer(model, _FakeBPE(), vocab)
    ids = [30, *[ord(c) - 96 for c in "abc"], 31]
    assert scorer.score(ProbeUtterance("abc", np.zeros(4, np.float32))) == pytest.approx(causal_lm_loglik(model, ids))


def test_load_system_scorers_reports_missing_models(tmp_path):
    import json
    from dataclasses import asdict

    from taste.asr.bpe import train_bpe
    from taste.evaluation.probes import ModelPaths, load_system_scorers
    from taste.lm.text_lm import LMVocab, build_text_lm, debug_config, save_text_lm

    tok = train_bpe(["the cat sat on the mat", "a dog ran in the park"] * 10, vocab_size=60)
    vocab = LMVocab.for_tokenizer(tok)
    lm_dir = tmp_path / "text_lm"
    save_text_lm(build_text_lm(debug_config(vocab.size + 2), vocab), lm_dir)
    tok.save(str(lm_dir / "tokenizer.json"))
    (lm_dir / "lm_vocab.json").write_text(json.dumps(asdict(vocab)))
    paths = ModelPaths(taste=str(tmp_path / "no_taste"), units=str(tmp_path / "no_units"), text_lm=str(lm_dir),
                       taslm=str(tmp_path / "no_taslm_{variant}"), s3_lm=str(tmp_path / "no_s3"))
    scorers, missing = load_system_scorers(paths, lambda w: torch.zeros(80, 10), ["cascade", "s3_lm", "taslm_token"])
    assert set(scorers) == {"cascade"} and set(missing) == {"s3_lm", "taslm_token"}
    assert "no_s3" in missing["s3_lm"] or "no_units" in missing["s3_lm"]
    ll = scorers["cascade"].score(ProbeUtterance("the cat sat", np.zeros(10, np.float32)))
    assert np.isfinite(ll) and ll < 0
    none, why = load_system_scorers(ModelPaths(text_lm=str(tmp_path / "nothing")), lambda w: None, ["cascade"])
    assert none == {} and "text LM" in why["cascade"]


def test_load_system_scorers_reports_lora_adapters_of_another_base(tmp_path):
    """A LoRA S3-unit LM fine-tuned over another text LM than the one at paths.text_lm is reported, not scored."""
    import json
    from dataclasses import asdict

    from taste.asr.bpe import train_bpe
    from taste.evaluation.probes import ModelPaths, load_system_scorers
    from taste.lm.s3_lm import S3LMConfig, S3UnitLM
    from taste.lm.text_lm import LMVocab, apply_lora, build_text_lm, debug_config, save_text_lm

    tok = train_bpe(["the cat sat on the mat", "a dog ran in the park"] * 10, vocab_size=60)
    vocab = LMVocab.for_tokenizer(tok)
    lm_dir = tmp_path / "text_lm"
    torch.manual_seed(0)
    save_text_lm(build_text_lm(debug_config(vocab.size + 2), vocab), lm_dir)
    tok.save(str(lm_dir / "tokenizer.json"))
    (lm_dir / "lm_vocab.json").write_text(json.dumps(asdict(vocab)))
    other_base = build_text_lm(debug_config(vocab.size + 2), vocab)  # another initialisation: other weights
    S3UnitLM(apply_lora(other_base, r=4, alpha=8), S3LMConfig(n_units=16, lora_r=4, lora_alpha=8)).save_pretrained(
        tmp_path / "s3")
    paths = ModelPaths(text_lm=str(lm_dir), s3_lm=str(tmp_path / "s3"), units=str(tmp_path / "no_units"))
    scorers, missing = load_system_scorers(paths, lambda w: torch.zeros(80, 10), ["cascade", "s3_lm"])
    assert set(scorers) == {"cascade"} and "not the one" in missing["s3_lm"]


def test_encoder_window_seconds(tmp_path):
    import json

    from taste.evaluation.probes import encoder_window_seconds

    (tmp_path / "config.json").write_text(json.dumps({"max_source_positions": 500}))
    assert encoder_window_seconds(tmp_path) == 10.0
    with pytest.raises(FileNotFoundError, match="asr stage"):
        encoder_window_seconds(tmp_path / "none")


def test_s3_scorer_end_to_end_with_debug_models():
    from taste.data.features import MelConfig, log_mel
    from taste.evaluation.probes import s3_scorer, s3_unit_loglik
    from taste.lm.data import collate_s3, s3_example
    from taste.lm.s3_lm import S3LMConfig, S3UnitLM
    from taste.lm.text_lm import LMVocab
    from taste.units.model import build_debug_unit_tokenizer

    torch.manual_seed(0)
    units_model = build_debug_unit_tokenizer().eval()
    lm = S3UnitLM(_debug_llama(), S3LMConfig(n_units=units_model.cfg.codebook_size)).eval()
    vocab = LMVocab(base_size=30, bos=30, eos=31, pad=32)
    mel_fn = lambda w: log_mel(w, MelConfig())  # noqa: E731
    scorer = s3_scorer(lm, units_model, _FakeBPE(), vocab, mel_fn)
    wav = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    units = scorer.encode_units(wav)
    assert len(units) == 25 and all(0 <= u < units_model.cfg.codebook_size for u in units)  # 1 s at 25 Hz
    ex = s3_example(_FakeBPE().encode("abc").ids, torch.tensor(units), vocab, lm.config.n_units, 1000)
    expected = s3_unit_loglik(lm, collate_s3([ex], vocab.pad, lm.config.n_units))
    assert scorer.score(ProbeUtterance("abc", wav)) == pytest.approx(expected)


def test_consistency_skip_reason_is_the_swap_renditions_check_on_the_global_sets(tmp_path):
    """One check for "same-text renditions" (taste.swap.jobs.no_renditions_reason) behind both callers: the swap
    stage's synthetic_pairs_skip_reason (any pair set, read from the prepared manifests) and the splice probes'
    consistency_skip_reason (only the global rate / pitch pairs, so a corpus with local pairs alone has none for
    them); both give its message."""
    from taste.data.records import write_manifest
    from taste.evaluation.probes import consistency_skip_reason
    from taste.swap.jobs import no_renditions_reason
    from taste.swap.study import synthetic_pairs_skip_reason

    def utt(uid, pair):
        return Utterance(uid, f"{uid}.wav", 1.0, SAMPLE_RATE, "a b", "spk", "test", None, None, pair=pair)

    def swap_reason(utterances, source):
        d = tmp_path / f"prepared{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        write_manifest(d / "swap_global.jsonl", utterances)
        return synthetic_pairs_skip_reason(d, source, names=("swap_global", "swap_local"))  # swap_local: absent

    rate = [utt("r0", PairInfo("global_rate", "p0", "slow")), utt("r1", PairInfo("global_rate", "p0", "fast"))]
    local = [utt("l0", PairInfo("local", "p1", "base", 0)), utt("l1", PairInfo("local", "p1", "variant", 0))]
    plain = [utt("x", None)]
    none_reason = "corpus has no same-text renditions (data.source=synthetic)"
    assert no_renditions_reason(plain, "synthetic") == none_reason
    # Renditions of any set: the swap study runs; the probes need global ones.
    assert swap_reason(rate + plain, "synthetic") is None and consistency_skip_reason(rate + plain, "synthetic") is None
    assert swap_reason(local + plain, "synthetic") is None and no_renditions_reason(local, "synthetic") is None
    assert consistency_skip_reason(local + plain, "synthetic") == (
        f"{none_reason}; the consistency probes splice two renditions of one sentence")
    # No renditions: both callers give the one check's message, for the source asked about.
    for source in ("synthetic", "folder"):
        reason = no_renditions_reason(plain, source)
        assert swap_reason(plain, source) == reason
        assert consistency_skip_reason(plain, source) == (
            f"{reason}; the consistency probes splice two renditions of one sentence")
    assert synthetic_pairs_skip_reason(tmp_path / "nowhere", "librispeech") == no_renditions_reason([], "librispeech")