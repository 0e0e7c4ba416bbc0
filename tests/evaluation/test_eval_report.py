"""Report: continuation records, speaking rate, per-item measurements with fakes, summaries, ordering, headline."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from taste.evaluation.coherence import KneserNeyLM, Story, StoryConsistency
from taste.evaluation.report import (
    PAPER_TABLE2,
    SYSTEMS,
    Continuation,
    ContinuationsFileError,
    JudgeScope,
    active_seconds,
    add_text_judges,
    headline_metrics,
    judge_floor,
    judge_scopes,
    paired_ratios,
    measure_audio,
    ordering_ratios,
    ordering_verdict,
    paper_comparison,
    read_continuations,
    speaking_rate,
    summarise,
    write_metrics,
)

SR = 16000


def _speech(seconds_silence: float, seconds_speech: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    pad = np.zeros(int(seconds_silence * SR), np.float32)
    return np.concatenate([pad, 0.3 * rng.standard_normal(int(seconds_speech * SR)).astype(np.float32), pad])


def test_active_seconds_and_rate():
    wav = _speech(0.5, 2.0)
    assert active_seconds(wav) == pytest.approx(2.0, abs=0.02)
    assert speaking_rate(wav, 5) == pytest.approx(2.5, rel=0.02)
    assert math.isnan(speaking_rate(wav, 0))
    assert active_seconds(np.zeros(10, np.float32)) == 0.0


def test_read_continuations(tmp_path):
    path = tmp_path / "continuations.jsonl"
    row = {"prompt_id": "p1", "story_id": "s1", "prompt_text": "a b", "prompt_wav": "p.wav",
           "continuation_text": "c d", "wav": "c.wav", "timings": {"total_s": 1.0}}
    path.write_text(json.dumps(row) + "\n\n")
    (c,) = read_continuations(path, "cascade")
    assert c == Continuation("cascade", "p1", "s1", "a b", "p.wav", "c d", "c.wav")
    path.write_text('{"prompt_id": "p1"}\n')
    with pytest.raises(ContinuationsFileError, match="continuations.jsonl:1"):
        read_continuations(path, "cascade")
    with pytest.raises(FileNotFoundError, match="taslm stage"):
        read_continuations(tmp_path / "none.jsonl", "cascade")


def test_read_continuations_in_the_taslm_stage_format(tmp_path):
    # Stage taslm writes wav_path and keeps the prompt's audio in ../prompts.jsonl (utterance + end time).
    from taste.data.audio_io import read_audio, write_audio
    from taste.evaluation.report import cut_prompts

    write_audio(tmp_path / "utt.wav", _speech(0.0, 2.0), SR)
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt_id": "p000_u1", "utt_id": "u1", "end_s": 1.25,
                                                        "audio_path": str(tmp_path / "utt.wav")}) + "\n")
    (tmp_path / "taslm_embed").mkdir()
    rec = {"system": "taslm_embed", "prompt_id": "p000_u1", "prompt_text": "a b", "continuation_text": "c",
           "story_id": "s1", "wav_path": "x.wav"}
    (tmp_path / "taslm_embed" / "continuations.jsonl").write_text(json.dumps(rec) + "\n")
    (c,) = read_continuations(tmp_path / "taslm_embed" / "continuations.jsonl", "taslm_embed")
    assert c.wav == "x.wav" and c.prompt_wav == str(tmp_path / "utt.wav") and c.prompt_end_s == 1.25
    (cut,) = cut_prompts([c], lambda p: read_audio(p, SR), tmp_path / "prompts")
    assert cut.prompt_end_s is None and len(read_audio(cut.prompt_wav, SR)) == int(1.25 * SR)
    rec["prompt_id"] = "unknown"
    (tmp_path / "taslm_embed" / "continuations.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ContinuationsFileError, match="prompts.jsonl"):
        read_continuations(tmp_path / "taslm_embed" / "continuations.jsonl", "taslm_embed")


class FakeEncoder:
    def encode(self, texts, **kwargs):
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _items():
    audio = {"p.wav": _speech(0.2, 1.0), "good.wav": _speech(0.2, 1.0), "fast.wav": _speech(0.2, 0.5)}
    items = [Continuation("cascade", "p1", "s1", "anna went to the barn", "p.wav", "anna fed the goat in the barn",
                          "good.wav"),
             Continuation("s3_lm", "p1", "s1", "anna went to the barn", "p.wav", "anna fed the goat", "fast.wav")]
    transcripts = {id(audio["good.wav"]): "anna fed the goat in the barn", id(audio["fast.wav"]): ""}
    return audio, items, transcripts


def test_measure_audio_and_text_judges():
    audio, items, transcripts = _items()
    df = measure_audio(
        items, read=audio.__getitem__, asr=lambda wavs: [transcripts[id(w)] for w in wavs],
        recognizer=lambda w: transcripts[id(w)] or "um", speaker_embed=lambda w: np.array([1.0, len(w) / SR]),
        quality=lambda w: {"ovrl": 3.0, "sig": 3.5, "bak": 4.0})
    assert list(df["system"]) == ["cascade", "s3_lm"]
    assert df.loc[0, "asr_ps_wer"] == 0.0 and math.isnan(df.loc[1, "asr_ps_wer"])
    assert df.loc[0, "rate_prompt"] == pytest.approx(5.0, rel=0.05)
    # rates count the words the system meant to say, not what the recogniser heard: 7 words in 1 s, 4 in 0.5 s
    assert df.loc[0, "rate_cont"] == pytest.approx(7.0, rel=0.05)
    assert df.loc[1, "rate_cont"] == pytest.approx(8.0, rel=0.05)  # although the recogniser heard nothing
    assert df.loc[0, "speaker_sim"] == pytest.approx(1.0) and df.loc[1, "speaker_sim"] < 1.0
    lm = KneserNeyLM().fit(["anna fed the goat in the barn", "tom sailed the boat"])
    stories = [Story("s1", "farm", ("anna",), ("the barn",), ("a goat",), ("anna went to the barn",)),
               Story("s2", "sea", ("tom",), ("the harbour",), ("a boat",), ("tom sailed the boat",))]
    judged, errors = add_text_judges(df, FakeEncoder(), lm, StoryConsistency(stories))
    assert errors == [] and judged["llm_judge"].isna().all()
    good, empty = judged.iloc[0], judged.iloc[1]
    assert good["embed_sim"] > 0.5 and empty["embed_sim"] == 0.0
    assert good["story_consistency"] == 1.0 and empty["story_consistency"] == 0.0
    assert empty["ref_logppl"] == pytest.approx(math.log(len(lm.vocab) + 1))  # saying nothing is not rewarded
    assert good["ref_logppl"] < empty["ref_logppl"]


def test_judge_floor_is_each_judges_wer_on_original_speech():
    wavs = [np.full(10, k, np.float32) for k in range(4)]
    refs = ["a b", "c d", "e f", "g h"]
    perfect = lambda ws: [refs[int(w[0])] for w in ws]
    half = lambda ws: [refs[int(w[0])].split()[0] + " x" for w in ws]
    floor = judge_floor(refs, wavs, {"perfect": perfect, "half": half}, n_boot=200, seed=0)
    assert floor["perfect"]["value"] == 0.0 and floor["perfect"]["n"] == 4
    assert floor["half"]["value"] == pytest.approx(0.5) and floor["half"]["ci_lo"] <= 0.5 <= floor["half"]["ci_hi"]
    assert judge_floor([], [], {"perfect": perfect})["perfect"]["n"] == 0
    with pytest.raises(ValueError, match="2 transcripts for 4 recordings"):
        judge_floor(refs[:2], wavs, {"perfect": perfect})


def test_paired_ratios_resample_prompts_and_orient_better_above_one():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        base = rng.uniform(0.2, 0.8)  # a prompt effect shared by both systems: pairing removes it from the CI
        rows += [{"system": "cascade", "prompt_id": f"p{i}", "embed_sim": base * 1.5, "ref_logppl": 2.0},
                 {"system": "s3_lm", "prompt_id": f"p{i}", "embed_sim": base, "ref_logppl": 3.0}]
    rows.append({"system": "cascade", "prompt_id": "lonely", "embed_sim": 9.0, "ref_logppl": 0.0})  # unpaired
    out = paired_ratios(pd.DataFrame(rows), ["embed_sim", "ref_logppl"], n_boot=300, seed=0)
    r = out["embed_sim.cascade_over_s3_lm"]
    assert r["n"] == 40 and r["value"] == pytest.approx(1.5)
    assert r["ci_lo"] == pytest.approx(1.5) and r["ci_hi"] == pytest.approx(1.5)  # exact 1.5x on every prompt
    # lower perplexity is better: exp(3) / exp(2)
    assert out["ref_logppl.cascade_over_s3_lm"]["value"] == pytest.approx(math.e)
    assert "embed_sim.taslm_token_over_cascade" not in out  # systems without values are skipped


def test_paired_ratio_with_a_zero_denominator_is_null_with_its_name_not_nan():
    # a 0/1 judge that b passes on one prompt of 20: a third of the resamples miss it, mean(b) = 0 there and the
    # ratio is unbounded (+inf); on a second judge neither passes anywhere: 0 / 0 is undefined (nan)
    rows = []
    for i in range(20):
        rows += [{"system": "cascade", "prompt_id": f"p{i}", "story_consistency": float(i % 2), "embed_sim": 0.0},
                 {"system": "s3_lm", "prompt_id": f"p{i}", "story_consistency": float(i == 1), "embed_sim": 0.0}]
    out = paired_ratios(pd.DataFrame(rows), ["story_consistency", "embed_sim"], n_boot=200, seed=0)
    r = out["story_consistency.cascade_over_s3_lm"]
    assert r["value"] == pytest.approx(10.0) and r["ci_hi"] is None and r["non_finite"] == {"ci_hi": "inf"}
    assert 1.0 <= r["ci_lo"] <= 10.0
    zero = int(r["undefined"].split(" of ")[0])
    assert 0 < zero < 200  # (19/20)^20 = 36% of resamples miss the one passing prompt
    z = out["embed_sim.cascade_over_s3_lm"]
    assert z["value"] is None and z["ci_lo"] is None and z["non_finite"] == {"value": "nan", "ci_lo": "nan",
                                                                              "ci_hi": "nan"}
    json.dumps(out, allow_nan=False)  # valid JSON: no NaN or Infinity anywhere
    # the ordering verdict reads them back: an interval [lo, inf) with lo >= 0.9 is close to the cascade; 0 / 0 is not
    verdict = ordering_verdict({"story_consistency.taslm_token_over_cascade": r,
                                "story_consistency.taslm_token_over_s3_lm": z}).iloc[0]
    assert verdict["close_to_cascade_ci"] and verdict["vs_cascade_hi"] == math.inf
    assert not verdict["above_s3"] and math.isnan(verdict["vs_s3"])


def _per_item():
    rng = np.random.default_rng(0)
    rows = []
    means = {"cascade": 0.6, "s3_lm": 0.2, "taslm_token": 0.55, "taslm_embed": 0.58}
    for system, m in means.items():
        for i in range(30):
            rows.append({"system": system, "embed_sim": m + 0.05 * rng.standard_normal(),
                         "ref_logppl": math.log(20 if system != "s3_lm" else 80) + 0.01 * rng.standard_normal(),
                         "dnsmos_ovrl": np.nan if i == 0 else 3.0})
    return pd.DataFrame(rows)


def test_summarise_against_plain_mean():
    df = _per_item()
    summary = summarise(df, ["embed_sim", "ref_logppl", "dnsmos_ovrl", "absent"], n_boot=100)
    row = summary[(summary.system == "cascade") & (summary.judge == "embed_sim")].iloc[0]
    assert row["mean"] == pytest.approx(df[df.system == "cascade"]["embed_sim"].mean())
    assert row["lo"] < row["mean"] < row["hi"] and row["n"] == 30
    assert summary[(summary.judge == "dnsmos_ovrl")]["n"].eq(29).all()  # NaNs dropped
    assert "absent" not in set(summary.judge)


def test_ordering_ratios_and_headline(tmp_path):
    summary = summarise(_per_item(), ["embed_sim", "ref_logppl"], n_boot=50)
    ratios = ordering_ratios(summary, ["embed_sim", "ref_logppl"])
    assert ratios["embed_sim.taslm_embed_over_s3_lm"] > 1.5
    assert 0.9 < ratios["embed_sim.taslm_token_over_cascade"] < 1.0
    # Lower perplexity is better: TASLM at ppl 20 vs S3 at ppl 80 is a 4x improvement.
    assert ratios["ref_logppl.taslm_token_over_s3_lm"] == pytest.approx(4.0, rel=0.05)
    probes = {"cascade": {"storycloze": {"accuracy": 0.9}, "rate": {"accuracy": float("nan")}}}
    metrics = headline_metrics(summary, probes, ratios, extra={"n_items": 30})
    assert metrics["cascade"]["probe_storycloze"] == 0.9 and "probe_rate" not in metrics["cascade"]
    assert set(SYSTEMS) <= set(metrics) and "ordering" in metrics
    path = write_metrics(metrics, tmp_path / "out" / "metrics.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(metrics))
    table = paper_comparison(summary, "2 h synthetic speech")
    assert list(table.system) == list(SYSTEMS)
    assert table.set_index("system").loc["taslm_embed", "paper_gpt4o"] == PAPER_TABLE2["taslm_embed"]["gpt4o"]
    assert (table.our_scale == "2 h synthetic speech").all()


def test_short_audio_gives_nan_not_an_error():
    audio = {"p.wav": _speech(0.2, 1.0), "tiny.wav": np.zeros(100, np.float32)}
    items = [Continuation("s3_lm", "p1", "s1", "anna went", "p.wav", "", "tiny.wav")]

    def refuse(w):
        raise AssertionError("must not be called on audio shorter than 0.1 s")

    df = measure_audio(items, read=audio.__getitem__, asr=lambda wavs: [""] * len(wavs), recognizer=refuse,
                       speaker_embed=lambda w: refuse(w) if len(w) < 1600 else np.ones(2), quality=refuse)
    assert df[["dnsmos_ovrl", "speaker_sim", "rate_cont"]].isna().all(axis=None)


def test_quality_only_on_chosen_prompts():
    audio, items, transcripts = _items()
    items = items + [Continuation("cascade", "p2", "s1", "anna went", "p.wav", "x", "good.wav")]
    calls = []
    df = measure_audio(items, read=audio.__getitem__, asr=lambda wavs: ["anna"] * len(wavs),
                       recognizer=lambda w: "anna", speaker_embed=lambda w: np.ones(2),
                       quality=lambda w: calls.append(1) or {"ovrl": 3.0, "sig": 3.0, "bak": 3.0},
                       quality_prompts={"p1"})
    assert len(calls) == 2 and list(df["dnsmos_ovrl"].isna()) == [False, False, True]


def test_judge_scopes_audible_and_rated():
    items = [Continuation("cascade", pid, "s1", "anna went", "p.wav", "x", "c.wav") for pid in ("p1", "p2", "p1")]
    wavs = [np.ones(1600, np.float32), np.ones(1600, np.float32), np.ones(1599, np.float32)]  # the last < 0.1 s
    rated, unrated, inaudible = JudgeScope(True, True), JudgeScope(True, False), JudgeScope(False, False)
    assert judge_scopes(items, wavs, {"p1"}) == [rated, unrated, inaudible]  # p2 is outside quality_prompts
    assert judge_scopes(items, wavs, None) == [rated, rated, inaudible]
    assert judge_scopes(items, wavs, set()) == [unrated, unrated, inaudible]
    # digital silence is not audible however long (session 21: an S3-unit LM continuation of 0.1 s of zeros got a
    # speaker similarity from resemblyzer's NaN-normalised audio)
    silent = [np.zeros(1600, np.float32), np.zeros(16000, np.float32), np.r_[np.zeros(1599), 1e-4].astype(np.float32)]
    assert judge_scopes(items, silent, None) == [inaudible, inaudible, rated]


def test_asr_transcriber_matches_direct_transcription(tmp_path):
    import torch

    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config, save_asr, transcribe
    from taste.data.features import MelConfig, log_mel

    tok = train_bpe(["anna went to the barn", "tom sailed the boat"] * 20, vocab_size=60)
    save_asr(build_asr(debug_config(), tok), tok, tmp_path / "asr")
    from taste.evaluation.report import asr_transcriber

    cfg = MelConfig()
    run = asr_transcriber(tmp_path / "asr", cfg, batch_size=2)
    wavs = [_speech(0.1, 0.5), np.zeros(50, np.float32), _speech(0.1, 0.8), _speech(0.1, 3.0)]
    texts = run(wavs)
    assert len(texts) == 4 and texts[1] == ""
    from taste.asr.whisper import load_asr

    model = load_asr(tmp_path / "asr")
    mel = log_mel(wavs[0], cfg)
    assert texts[0] == transcribe(model, tok, mel[None], torch.tensor([mel.shape[-1]]))[0]


def test_text_judges_with_suffix_keep_the_first_columns():
    df = pd.DataFrame({"system": ["a"], "prompt_text": ["tom sailed"], "story_id": ["s1"],
                       "asr_text": ["tom sailed the boat"], "ps_text": [""]})
    lm = KneserNeyLM().fit(["tom sailed the boat"])
    stories = [Story("s1", "sea", ("tom",), ("the harbour",), ("a boat",), ("tom sailed the boat",))]
    judged, _ = add_text_judges(df, FakeEncoder(), lm, StoryConsistency(stories))
    judged, _ = add_text_judges(judged, FakeEncoder(), lm, StoryConsistency(stories), text_column="ps_text",
                                suffix="_ps")
    assert judged.loc[0, "story_consistency"] == 1.0 and judged.loc[0, "story_consistency_ps"] == 0.0
    assert judged.loc[0, "embed_sim"] > 0 and judged.loc[0, "embed_sim_ps"] == 0.0
    ratios = ordering_ratios(summarise(pd.DataFrame({"system": ["taslm_token", "cascade", "s3_lm"],
                                                     "ref_logppl_ps": [1.0, 1.0, 2.0]}), ["ref_logppl_ps"], 10),
                             ["ref_logppl_ps"])
    assert ratios["ref_logppl_ps.taslm_token_over_s3_lm"] == pytest.approx(math.e)


def test_ordering_verdict():
    from taste.evaluation.report import ordering_verdict

    verdict = ordering_verdict({"embed_sim.taslm_embed_over_cascade": 0.95, "embed_sim.taslm_embed_over_s3_lm": 1.6,
                                "embed_sim.taslm_token_over_cascade": 0.8, "embed_sim.taslm_token_over_s3_lm": 1.2})
    v = verdict.set_index("variant")
    assert v.loc["taslm_embed", "close_to_cascade"] and v.loc["taslm_embed", "above_s3"]
    assert not v.loc["taslm_token", "close_to_cascade"] and not v.loc["taslm_token", "above_s3"]
