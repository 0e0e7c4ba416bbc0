"""Prompt selection and the four systems' continuation wiring, with fakes for the other stages' models."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fakes import FakeCodebook, fake_units

from taste.data.audio_io import read_audio
from taste.data.features import MelConfig
from taste.data.records import Utterance, WordAlignment
from taste.lm.continuation import (SYSTEMS, PreparedPrompt, Prompt, Systems, run_system, seconds_per_word,
                                   select_prompts)
from taste.lm.generate import Sampling
from taste.lm.s3_lm import S3LMConfig, S3UnitLM
from taste.lm.taslm import TASLM, TASLMConfig


def aligned(uid, words, word_s):
    ws = tuple(WordAlignment(w, i * word_s, word_s) for i, w in enumerate(words))
    return Utterance(id=uid, audio_path=f"a/{uid}.wav", duration=len(words) * word_s, sample_rate=16000,
                     text=" ".join(words), speaker="spk", split="test", rate_wpm=None, pitch=None, words=ws,
                     story_id="s1")


def test_select_prompts_windows_and_seed():
    utts = [aligned(f"u{i}", "the old man walked home very slowly today".split(), 0.2 + 0.1 * i) for i in range(8)]
    prompts = select_prompts(utts, 5, (1.5, 3.0), seed=3)
    assert len(prompts) == 5 and len({p.utt_id for p in prompts}) == 5
    for p in prompts:
        utt = next(u for u in utts if u.id == p.utt_id)
        k = len(p.gt_text.split())
        assert 1.5 <= p.end_s <= 3.0 and k < len(utt.words)
        assert p.gt_text.split() == utt.text.split()[:k]
        # the longest prefix that fits: one more word would end past 3 s or leave nothing to continue
        assert utt.words[k].start + utt.words[k].duration > 3.0 or k + 1 == len(utt.words)
    assert [p.prompt_id for p in prompts] == [p.prompt_id for p in select_prompts(utts, 5, (1.5, 3.0), seed=3)]
    with pytest.raises(ValueError, match="prefix"):
        select_prompts([aligned("x", ["a", "b"], 0.1)], 5, (1.5, 3.0), seed=0)


def test_seconds_per_word():
    assert seconds_per_word([aligned("a", ["x"] * 4, 0.5)]) == pytest.approx(0.5)


class FakeDecoder:
    """Four units per word; records what it was asked to speak."""

    def __init__(self):
        self.calls = []

    def decode_batch(self, transcripts, vectors, speakers, seed=0):
        assert vectors is None or len(vectors) == len(transcripts) == len(speakers)
        assert isinstance(seed, int) or len(seed) == len(transcripts)  # one seed per row
        out = []
        for i, text in enumerate(transcripts):
            n = len(text.split())
            assert vectors is None or vectors[i].shape[0] == n
            self.calls.append((text, vectors is not None))
            out.append(SimpleNamespace(units=torch.arange(4 * n) % 16, word_boundaries=[4 * i for i in range(n)]))
        return out


class FakeVocoder:
    def __init__(self):
        self.seeds = []

    def synthesise(self, units, speaker, seed=None):
        self.seeds.append(seed)
        return np.full(len(units) * 640, 0.1, dtype=np.float32)


@pytest.fixture
def systems(bpe, vocab, tiny_lm):
    cb = FakeCodebook()
    taste = FakeDecoder()
    taste.codes_to_vectors, taste.quantize = cb.codes_to_vectors, cb.quantize
    cfg = dict(n_q=2, codebook_size=16, taste_dim=16)
    return Systems(tokenizer=bpe, vocab=vocab, text_lm=tiny_lm, vocoder=FakeVocoder(), mel_cfg=MelConfig(),
                   taste=taste, taste_text_only=FakeDecoder(),
                   taslm={v: TASLM(tiny_lm, TASLMConfig(variant=v, **cfg)) for v in ("token", "embed")},
                   s3_lm=S3UnitLM(tiny_lm, S3LMConfig(n_units=16)))


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_system_continues_every_prompt(system, systems, utts, codes, tmp_path):
    prepared = [
        PreparedPrompt(Prompt(f"p{i}", u.id, u.audio_path, "s1", u.speaker, 1.0, " ".join(u.text.split()[:2]), u.text),
                       " ".join(u.text.split()[:2]), "asr", codes[u.id][:2], fake_units([u])[u.id][:25],
                       torch.zeros(256), {"asr_s": 0.01, "encode_s": 0.02})
        for i, u in enumerate(utts[:3])
    ]
    records = run_system(system, prepared, systems, Sampling(top_p=0.9, temperature=1.0), 3, 40, 0, tmp_path,
                         decode_batch=2)
    lines = (tmp_path / system / "continuations.jsonl").read_text().splitlines()
    assert len(records) == len(lines) == 3
    for rec, pp in zip(map(json.loads, lines), prepared):
        assert rec["prompt_id"] == pp.prompt.prompt_id and rec["prompt_text"] == pp.text
        wav = read_audio(rec["wav_path"], 16000)
        assert len(wav) == (len(rec["units"]) * 640 if rec["units"] else 1600)  # silence when nothing to say
        assert rec["generated_seconds"] == pytest.approx(len(rec["units"]) / 25)
        t = rec["timings"]
        assert t["end_to_end_s"] == pytest.approx(sum(v for k, v in t.items() if k != "end_to_end_s"), abs=1e-3)
        assert ("encode_s" in t) == system.startswith("taslm")
        if system.startswith("taslm"):
            n_prompt = len(pp.text.split())
            assert len(rec["codes"]) == n_prompt + rec["n_words"]
            assert rec["codes"][:n_prompt] == pp.codes.tolist()
        if system != "s3_lm":  # the decoder spoke prompt + continuation; the wav holds the continuation only
            assert len(rec["units"]) == 4 * rec["n_words"]
    decoder = systems.taste_text_only if system == "cascade" else systems.taste
    if system != "s3_lm":
        spoken = [text for text, _ in decoder.calls]
        assert spoken == [f"{r['prompt_text']} {r['continuation_text']}" for r in records]
        assert all(has_vectors == (system != "cascade") for _, has_vectors in decoder.calls)


@pytest.mark.parametrize("hyp,expected_source", [("the cat sat", "asr"), ("the " * 30, "ground_truth (asr implausible)"),
                                                 ("", "ground_truth")])
def test_prompt_text_from_asr_with_fallback(monkeypatch, bpe, vocab, tiny_lm, hyp, expected_source):
    import taste.asr.whisper as whisper
    from taste.lm.continuation import prepare_wav

    monkeypatch.setattr(whisper, "transcribe", lambda model, tok, mels: [hyp])
    systems = Systems(tokenizer=bpe, vocab=vocab, text_lm=tiny_lm, vocoder=None, mel_cfg=MelConfig(), asr=object())
    prompt = Prompt("p", "u", "a.wav", None, "s", 2.0, "a dog ran", "a dog ran to the park")
    pp = prepare_wav(prompt, np.zeros(32000, dtype=np.float32), systems, torch.zeros(256), None)
    assert pp.text_source == expected_source
    assert pp.text == ("the cat sat" if expected_source == "asr" else "a dog ran")
    assert "asr_s" in pp.timings


def test_prompt_inputs_come_from_the_prompt_audio_alone(tmp_path, bpe, vocab, tiny_lm):
    """Speaker embedding and S3 units of a study prompt depend only on audio before its cut (no continuation leaks
    in), and equal what `taste continue` computes from the cut prompt saved as its own file."""
    from taste.data.audio_io import read_audio, write_audio
    from taste.lm.continuation import prepare_audio, prepare_prompt
    from taste.units.model import build_debug_unit_tokenizer

    torch.manual_seed(0)
    unit_model = build_debug_unit_tokenizer().eval()
    systems = Systems(tokenizer=bpe, vocab=vocab, text_lm=tiny_lm, vocoder=None, mel_cfg=MelConfig(), asr=None,
                      taste=debug_taste_tokenizer())
    rng = np.random.default_rng(0)
    head = rng.normal(0, 0.1, 16000).astype(np.float32)

    def embed(wav):  # any function of the whole signal: a leak of the tail would change it
        return np.full(256, float(np.abs(wav).sum()), np.float32)

    prepared = []
    for k, tail in enumerate([rng.normal(0, 0.5, 16000), np.zeros(24000)]):
        path = tmp_path / f"utt{k}.wav"
        write_audio(path, np.concatenate([head, tail.astype(np.float32)]), 16000)
        prompt = Prompt("p", "u", str(path), None, "s", 1.0, "a dog ran", "a dog ran to the park")
        prepared.append(prepare_prompt(prompt, systems, embed, unit_model))
    a, b = prepared
    assert torch.equal(a.speaker, b.speaker) and torch.equal(a.units, b.units)
    assert a.codes.shape == (3, 4) and torch.equal(a.codes, b.codes)  # TASTE codes: 3 words x 4 RVQ levels
    assert len(a.units) == 25  # 1 s of prompt at 25 Hz, not the whole utterance

    cut = tmp_path / "cut.wav"
    write_audio(cut, read_audio(tmp_path / "utt0.wav", 16000)[:16000], 16000)
    cli = prepare_audio(Prompt("cli", "cut", str(cut), None, "unknown", 1.0, "", ""), read_audio(cut, 16000),
                        systems, embed, unit_model, "a dog ran")
    assert torch.equal(cli.speaker, a.speaker) and torch.equal(cli.units, a.units) and cli.text == a.text
    assert torch.equal(cli.codes, a.codes)  # the study's TASTE codes of the prompt = `taste continue`'s


def debug_taste_tokenizer():
    """A debug-size TASTE tokenizer (RVQ stage) on a debug-size Whisper, random weights."""
    from dataclasses import replace

    from fakes import SENTENCES

    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config
    from taste.tokenizer import TasteTokenizer
    from taste.tokenizer import debug_config as taste_debug

    torch.manual_seed(0)
    tok = train_bpe(SENTENCES * 2 + ["a dog ran to the park"], vocab_size=80, min_frequency=1)
    asr = build_asr(debug_config(), tok, seed=0)
    cfg = taste_debug(vocab_size=tok.get_vocab_size(), n_units=16)
    cfg = replace(cfg, aggregator=replace(cfg.aggregator, d_model=asr.config.d_model, n_heads=2,
                                          max_tokens=asr.config.max_target_positions,
                                          ffn_dim=asr.config.decoder_ffn_dim))
    return TasteTokenizer.from_asr(cfg, asr, tok, stage="rvq").eval()


def test_prompt_seed_is_a_stable_hash_of_seed_and_prompt_id():
    from taste.lm.continuation import prompt_seed

    # a fixed value: the same in every process and on every machine (Python's hash() of a str is not)
    assert prompt_seed(0, "p000_u1") == prompt_seed(0, "p000_u1") == PROMPT_SEED_0_P000_U1
    seeds = {prompt_seed(s, p) for s in (0, 1) for p in ("p000_u1", "p001_u1", "p000_u2")}
    assert len(seeds) == 6 and all(0 <= x < 2**63 for x in seeds)


PROMPT_SEED_0_P000_U1 = 140832981348665194  # sha256("0\x1fcontinuation\x1fp000_u1"), first 63 bits


@pytest.mark.parametrize("system", ["cascade", "s3_lm", "taslm_embed"])
def test_a_prompt_continues_alike_alone_in_any_order_and_in_the_cli(system, systems, utts, codes, tmp_path):
    """Seeds come from (study seed, prompt id), not the prompt's position: the study over all prompts, the study
    over a reordered subset and `taste continue` (continue_prompt) on one prompt give it the same continuation,
    and the vocoder gets that prompt's own seed."""
    from taste.lm.continuation import continue_prompt, prompt_seed

    prepared = [
        PreparedPrompt(Prompt(f"p{i}", u.id, u.audio_path, "s1", u.speaker, 1.0, " ".join(u.text.split()[:2]), u.text),
                       " ".join(u.text.split()[:2]), "asr", codes[u.id][:2], fake_units([u])[u.id][:25],
                       torch.zeros(256))
        for i, u in enumerate(utts[:3])
    ]
    s = Sampling(top_p=0.9, temperature=1.0)
    keep = ("continuation_text", "units", "lm_steps")
    full = {r["prompt_id"]: [r[k] for k in keep]
            for r in run_system(system, prepared, systems, s, 3, 40, 5, tmp_path / "a", decode_batch=2)}
    systems.vocoder.seeds.clear()
    sub = {r["prompt_id"]: [r[k] for k in keep]
           for r in run_system(system, prepared[2::-2], systems, s, 3, 40, 5, tmp_path / "b", decode_batch=1)}
    assert sub == {k: full[k] for k in sub} and len(sub) == 2
    assert systems.vocoder.seeds == [prompt_seed(5, pp.prompt.prompt_id) for pp in prepared[2::-2]
                                     if sub[pp.prompt.prompt_id][1]]
    rec, _ = continue_prompt(system, prepared[1], systems, s, 3, 40, 5)
    assert [rec[k] for k in keep] == full["p1"]
