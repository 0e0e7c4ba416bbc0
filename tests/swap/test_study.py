import math

import numpy as np
import pandas as pd
import pytest
import torch

from swap_fakes import RATE_HZ, FakeTokenizer, make_pairs
from taste.data.loaders import save_tensor_map
from taste.data.records import write_manifest
from taste.swap.decode import decode_jobs, word_durations_from_boundaries
from taste.swap.jobs import build_pairs, jobs_for_pair
from taste.swap.measure import ratios
from taste.swap.study import SwapSettings, load_inputs, plan_jobs, run_audio, run_decoder
from taste.swap.summary import build_metrics

SETTINGS = SwapSettings(seeds=(0, 1), batch_size=8, rate_hz=RATE_HZ, audio_pairs=1)


def run(tokenizer, settings=SETTINGS):
    utts, codes, speakers = make_pairs()
    plan = plan_jobs(build_pairs(utts), codes, settings)
    rows, decoded, _ = run_decoder(tokenizer, plan, speakers, settings)
    return rows, decoded, plan, speakers


def test_ratio_definition():
    r = ratios([1.0, 1.0, 1.0], [2.0, 1.01, 3.0], [1.5, 1.0, 3.0], [1.0, 0.01, 2.0], min_contrast=0.04)
    assert r[0] == pytest.approx(0.5) and math.isnan(r[1]) and r[2] == pytest.approx(1.0)


def test_perfect_word_tokens_give_full_transfer_no_leakage():
    rows, _, _, _ = run(FakeTokenizer(leak=0.0))
    metrics = build_metrics(rows, pd.DataFrame(), pd.DataFrame(), n_boot=50)
    g, loc = metrics["duration"]["global_rate"], metrics["duration"]["local"]
    assert g["transfer"]["value"] == pytest.approx(1.0) and g["leakage"]["value"] == pytest.approx(0.0)
    assert set(g["by_span"]) == {"single", "first_third", "middle_third", "every_other"}
    assert loc["transfer"]["value"] == pytest.approx(1.0)
    assert loc["control_movement"]["value"] == pytest.approx(0.0)
    # Mismatched words take the timing of the word their codes came from, not of their own donor rendition.
    assert g["mismatch_source_transfer"]["value"] == pytest.approx(1.0)
    mm = rows[(rows.condition == "mismatch") & rows.swapped & (rows.set == "global_rate")]
    assert (mm.ratio - 1).abs().mean() > 0.1
    # No goal is judged on the median estimator (the pooled slopes carry the goals: taste.swap.slope).
    assert "goals" not in metrics and metrics["estimator"].startswith("median of per-word ratios")
    # Both directions of every pair, every seed.
    assert set(rows.direction) == {"fast->slow", "slow->fast", "variant->base", "base->variant"}
    assert set(rows.seed) == {0, 1}


def test_global_rate_leak_is_detected():
    rows, _, _, _ = run(FakeTokenizer(leak=0.8))
    metrics = build_metrics(rows, pd.DataFrame(), pd.DataFrame(), n_boot=50)
    g, loc = metrics["duration"]["global_rate"], metrics["duration"]["local"]
    assert g["transfer"]["value"] < 0.9 and g["leakage"]["value"] > 0.1
    # Swapping word j alone moves the others through the sentence mean; the control moves nothing, because the
    # other words' codes are the same in both renditions of a local pair.
    assert loc["leakage"]["value"] > 0.05 and loc["control_movement"]["value"] == pytest.approx(0.0)


def test_noise_floor_measured_with_several_seeds():
    rows, _, _, _ = run(FakeTokenizer(noise=1.0))
    noise = rows[rows.condition == "noise"]
    assert len(noise) > 0 and np.nanmedian(np.abs(noise.ratio)) > 0
    metrics = build_metrics(rows, pd.DataFrame(), pd.DataFrame(), n_boot=50)
    assert metrics["duration"]["global_rate"]["decoder_noise"]["ratio_abs"]["n"] > 0


def test_batched_decode_matches_contract_and_dedupes():
    utts, codes, speakers = make_pairs(n_pairs=2)
    plan = plan_jobs(build_pairs(utts), codes, SETTINGS)
    flat = [j for jobs in plan for j in jobs]
    tok = FakeTokenizer(batched=True)
    out = decode_jobs(tok, flat, speakers, seed=0, rate_hz=RATE_HZ, batch_size=5)
    assert len(out) == len(flat) and tok.calls < len(flat)  # identical (speaker, text, codes) decoded once
    for job, dec in zip(flat, out):
        expected = (job.codes[:, 0].double() + 1.0) / RATE_HZ
        assert np.allclose(dec.word_durations_s, expected.numpy())
    assert word_durations_from_boundaries([0, 2, 5], 9, 25.0) == (0.08, 0.12, 0.16)


def test_local_jobs_and_bad_pairs():
    utts, codes, _ = make_pairs(n_pairs=1)
    pairs = [p for p in build_pairs(utts) if p.set == "local"]
    jobs = jobs_for_pair(pairs[0], codes[pairs[0].recipient_id], codes[pairs[0].donor_id])
    # j = 0: no words before it, so no before-j control
    assert [j.condition for j in jobs] == ["recon_recipient", "recon_donor", "swap", "control", "control_after",
                                           "mismatch"]
    assert jobs[2].words == (0,) and jobs[3].words == (1, 2, 3, 4, 5) and jobs[4].words == (1, 2, 3, 4, 5)
    utts3, codes3, _ = make_pairs(n_pairs=3)
    inner = [p for p in build_pairs(utts3) if p.set == "local" and p.changed_word == 2][0]
    by_condition = {j.condition: j for j in jobs_for_pair(inner, codes3[inner.recipient_id], codes3[inner.donor_id])}
    assert by_condition["control_before"].words == (0, 1) and by_condition["control_after"].words == (3, 4, 5)
    assert torch.equal(by_condition["control_before"].codes[2], codes3[inner.recipient_id][2])
    broken = [u for u in utts if u.id != "g0_fast"]
    with pytest.raises(ValueError, match="roles"):
        build_pairs(broken)
    other = [u.replace(text="a b c d e f") if u.id == "g0_fast" else u for u in utts]
    with pytest.raises(ValueError, match="different words"):
        build_pairs(other)
    assert len(build_pairs(utts, max_pairs=1)) == 4
    only_local = build_pairs(make_pairs(n_pairs=3)[0], max_pairs={"local": 2, "global_rate": None})
    assert [p.set for p in only_local].count("local") == 4 and [p.set for p in only_local].count("global_rate") == 6


def test_load_inputs_round_trip(tmp_path):
    utts, codes, speakers = make_pairs(n_pairs=1)
    prepared, codes_dir = tmp_path / "prepared", tmp_path / "codes"
    write_manifest(prepared / "swap_global.jsonl", [u for u in utts if u.pair.set != "local"])
    write_manifest(prepared / "swap_local.jsonl", [u for u in utts if u.pair.set == "local"])
    for name, keep in (("swap_global", lambda u: u.pair.set != "local"), ("swap_local", lambda u: u.pair.set == "local")):
        save_tensor_map(codes_dir / f"{name}.safetensors", {u.id: codes[u.id].to(torch.int16) for u in utts if keep(u)})
    save_tensor_map(prepared / "speaker_embeddings.safetensors", speakers)
    u2, c2, s2 = load_inputs(prepared, codes_dir)
    assert [u.id for u in u2] == [u.id for u in utts if u.pair.set != "local"] + [u.id for u in utts if u.pair.set == "local"]
    assert all(torch.equal(c2[k], codes[k]) for k in codes) and s2[utts[0].id].shape == (256,)
    with pytest.raises(FileNotFoundError):
        load_inputs(prepared, tmp_path / "nowhere")
    # A rendition without codes drops its whole pair (with a warning).
    save_tensor_map(codes_dir / "swap_global.safetensors",
                    {u.id: codes[u.id].to(torch.int16) for u in utts if u.pair.set != "local" and u.id != "g0_fast"})
    with pytest.warns(UserWarning, match="dropped 1 incomplete pairs"):
        u3, _, _ = load_inputs(prepared, codes_dir)
    assert {u.pair.set for u in u3} == {"local"}


class FakeVocoder:
    """Audio whose length encodes the units: 40 ms of tone per unit."""

    def synthesise(self, units, speaker):
        t = np.arange(len(units) * 640) / 16000
        return (0.3 * np.sin(2 * np.pi * 120 * t)).astype(np.float32)


class FakeRecognizer:
    def __init__(self):
        self.last = None

    def transcribe(self, wav):
        return "w0x0 w0x1"

    def align(self, wav, text):
        from taste.data.records import WordAlignment

        n = len(text.split())
        d = len(wav) / 16000 / n
        return tuple(WordAlignment(w, i * d, d) for i, w in enumerate(text.split()))


def test_audio_subset_rows():
    rows, decoded, plan, speakers = run(FakeTokenizer())
    f0 = lambda wav, words: [120.0] * len(words)  # noqa: E731 - pitch is not what this test checks
    audio_rows, utt_rows, wavs = run_audio(FakeVocoder(), FakeRecognizer(), plan, decoded, speakers, SETTINGS, f0)
    assert set(utt_rows.set) == {"global_rate", "local"} and len(utt_rows) == len(wavs)
    assert set(audio_rows.measure) == {"duration_audio", "f0"}
    assert utt_rows.wer.between(0, 10).all()
    metrics = build_metrics(rows, audio_rows, utt_rows, n_boot=20)
    assert metrics["wer_audio_subset"]["global_rate"]["recon_recipient"] > 0
    from dataclasses import replace

    _, only_local, _ = run_audio(FakeVocoder(), FakeRecognizer(), plan, decoded, speakers,
                                 replace(SETTINGS, audio_pairs={"local": 1}), f0)
    assert set(only_local.set) == {"local"} and len(only_local) == 6  # l0 (j = 0): 5 jobs + the after-j control


def test_figures_written(tmp_path):
    from taste.swap import figures

    rows, _, _, _ = run(FakeTokenizer(noise=0.5))
    metrics = build_metrics(rows, pd.DataFrame(), pd.DataFrame(), n_boot=20)
    ex = figures.example_keys(rows, "global_rate", "first_third", 1) + figures.example_keys(rows, "local", "changed", 1)
    assert [e[0] for e in ex] == ["global_rate", "local"]
    paths = [figures.plot_word_durations(rows, ex, tmp_path / "a.png"),
             figures.plot_ratio_distributions(rows, tmp_path / "b.png"),
             figures.plot_span_summary(metrics["duration"], tmp_path / "c.png", "t")]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_metrics_are_strict_json():
    import json

    from taste.swap.summary import json_safe

    metrics = build_metrics(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), n_boot=10, extra={"x": float("nan")})
    rows, _, _, _ = run(FakeTokenizer())
    metrics["duration"] = build_metrics(rows, pd.DataFrame(), pd.DataFrame(), n_boot=10)["duration"]
    text = json.dumps(json_safe(metrics), allow_nan=False)
    assert json.loads(text)["x"] is None and json_safe({"a": np.int64(3), "b": (np.float32(0.5),)}) == {"a": 3, "b": [0.5]}


class FailingAligner(FakeRecognizer):
    def align(self, wav, text):
        from taste.metrics.recognizer import AlignmentError

        raise AlignmentError("no alignment")


def test_f0_is_measured_on_decoder_spans_even_when_alignment_fails():
    rows, decoded, plan, speakers = run(FakeTokenizer())
    seen = []

    def f0(wav, words):
        seen.append(words)
        return [100.0 + 10 * i for i in range(len(words))]

    audio_rows, utt_rows, _ = run_audio(FakeVocoder(), FailingAligner(), plan, decoded, speakers, SETTINGS, f0)
    assert not utt_rows.aligned.any()
    assert set(audio_rows.measure) == {"f0"}  # durations need the alignment; pitch does not
    for words in seen:  # contiguous spans from 0 covering the audio the fake vocoder made (40 ms per unit)
        assert words[0].start == 0.0
        assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(words, words[1:]))


def test_decoder_word_spans_reject_a_count_mismatch():
    from taste.swap.study import decoder_word_spans

    spans = decoder_word_spans("a b c", [0.2, 0.4, 0.1])
    assert [round(w.start, 6) for w in spans] == [0.0, 0.2, 0.6] and round(spans[-1].end, 6) == 0.7
    with pytest.raises(ValueError, match="3 words"):
        decoder_word_spans("a b c", [0.2, 0.4])


def test_synthetic_pairs_skip_reason(tmp_path):
    """A corpus with swap pairs runs the synthetic study; a real one (empty or missing swap manifests, records
    without pair info) skips it with a reason naming the source."""
    from taste.swap.study import synthetic_pairs_skip_reason

    utts, _, _ = make_pairs(n_pairs=1)
    write_manifest(tmp_path / "swap_global.jsonl", [u for u in utts if u.pair.set == "global_rate"])
    write_manifest(tmp_path / "swap_local.jsonl", [u for u in utts if u.pair.set == "local"])
    assert synthetic_pairs_skip_reason(tmp_path, "synthetic") is None
    real = tmp_path / "real"
    real.mkdir()
    assert "data.source=folder" in synthetic_pairs_skip_reason(real, "folder")  # no swap manifests at all
    write_manifest(real / "swap_global.jsonl", [])
    write_manifest(real / "swap_local.jsonl", [u.replace(pair=None) for u in utts[:1]])
    reason = synthetic_pairs_skip_reason(real, "librispeech")
    assert reason == "corpus has no same-text renditions (data.source=librispeech)"
