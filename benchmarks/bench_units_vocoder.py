"""Benchmark of the units and vocoder stages on this CPU.

Measures (1) unit extraction speed (log-mel -> units) and (2) synthesis speed (units -> log-mel, then Griffin-Lim)
as real-time factors (compute seconds per second of audio; < 1 is faster than real time), (3) training step time
and peak memory of both models at the params.yaml size, and (4) reads the stages' own training wall time and peak
memory from models/*/training/history and outputs/*/metrics.json when the study has run. Uses the trained models
and real test features when they exist, else randomly initialised models of the params.yaml size on random features.

    .venv/bin/python benchmarks/bench_units_vocoder.py [--params params.yaml] [--out outputs/benchmarks/units_vocoder.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from taste.config import load_params, set_threads

from _common import peak_mb as _peak_mb, test_mels as _test_mels
from taste.units.data import pad_mels
from taste.units.model import UnitTokenizer
from taste.units.pipeline import unit_config
from taste.vocoder.griffin_lim import mel_to_wave
from taste.vocoder.source_filter import mel_to_wave_source_filter
from taste.vocoder.data import pitch_losses
from taste.vocoder.model import UnitVocoder, masked_l1
from taste.vocoder.pipeline import mel_config, unit_space, vocoder_config


def _models(params: dict) -> tuple[UnitTokenizer, UnitVocoder, str]:
    models = Path(params["shared"]["paths"]["models"])
    if (models / "units" / "config.json").is_file() and (models / "vocoder" / "config.json").is_file():
        return UnitTokenizer.from_pretrained(models / "units"), UnitVocoder.from_pretrained(models / "vocoder"), "trained"
    n_units, rate = unit_space(params)
    units = UnitTokenizer(unit_config(params, n_phones=60))
    units(torch.randn(4, units.cfg.n_mels, 300) - 4, torch.full((4,), 300))  # k-means init
    return units.eval(), UnitVocoder(vocoder_config(params, n_units, rate)).eval(), "random"


def bench_extraction(model: UnitTokenizer, mels: list[torch.Tensor], batch_size: int = 16) -> dict:
    audio_s = sum(m.shape[-1] for m in mels) / 100
    t0 = time.perf_counter()
    for start in range(0, len(mels), batch_size):
        model.encode(*pad_mels(mels[start: start + batch_size]))
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in mels[:8]:
        model.encode(m[None], torch.tensor([m.shape[-1]]))
    single = time.perf_counter() - t0
    return {"audio_s": round(audio_s, 1), "rtf_batched": batched / audio_s,
            "rtf_single": single / (sum(m.shape[-1] for m in mels[:8]) / 100)}


def bench_synthesis(units_model: UnitTokenizer, vocoder: UnitVocoder, mels: list[torch.Tensor], params: dict) -> dict:
    """Real-time factors of units -> mel + F0 (the model) and of both waveform syntheses on the same predictions."""
    cfg, n_iter = mel_config(params), params["vocoder"]["griffin_lim_iters"]
    speaker = torch.randn(1, vocoder.cfg.speaker_dim)
    t_mel = t_gl = t_sf = audio_s = 0.0
    for m in mels[:8]:
        units, n = units_model.encode(m[None], torch.tensor([m.shape[-1]]))
        units = units[:, : int(n)].clamp_max(vocoder.cfg.n_units - 1)
        t0 = time.perf_counter()
        mel, f0 = (x[0] for x in vocoder.predict(units, speaker))
        t1 = time.perf_counter()
        wav = mel_to_wave(mel, cfg, n_iter)
        t2 = time.perf_counter()
        mel_to_wave_source_filter(mel, f0, cfg, noise_level=vocoder.cfg.noise_level)
        t_mel, t_gl, t_sf = t_mel + t1 - t0, t_gl + t2 - t1, t_sf + time.perf_counter() - t2
        audio_s += len(wav) / cfg.sample_rate
    synth = t_sf if vocoder.cfg.synthesis == "source_filter" else t_gl
    return {"rtf_units_to_mel_f0": t_mel / audio_s, "rtf_griffin_lim": t_gl / audio_s,
            "rtf_source_filter": t_sf / audio_s, "synthesis": vocoder.cfg.synthesis,
            "rtf_total": (t_mel + synth) / audio_s, "griffin_lim_iters": n_iter}


def bench_train_step(model: torch.nn.Module, step, steps: int = 5) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    return {"step_s_median": sorted(times)[len(times) // 2], "peak_memory_mb": round(_peak_mb(), 1)}


def stage_records(params: dict) -> dict:
    """Training wall time / peak memory the stages recorded (if the study has run)."""
    out = {}
    for stage in ("units", "vocoder"):
        path = Path(params["shared"]["paths"]["outputs"]) / stage
        rec = {}
        for name in ("metrics.json", "stage_time.json"):
            if (path / name).is_file():
                data = json.loads((path / name).read_text())
                rec.update({k: data[k] for k in ("train_wall_time_s", "train_peak_memory_mb", "wall_time_s",
                                                 "peak_memory_mb") if k in data})
        out[stage] = rec
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="outputs/benchmarks/units_vocoder.json")
    ap.add_argument("--utterances", type=int, default=32)
    args = ap.parse_args()
    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    units_model, vocoder, source = _models(params)
    mels = _test_mels(params, args.utterances)
    batch = params["units"]["train"]["batch_size"]
    mel, lengths = pad_mels(mels[:batch])
    targets = torch.randint(1, units_model.cfg.n_phones + 1, (int(lengths.sum() // 12),))
    tlen = torch.full((batch,), len(targets) // batch)
    targets = targets[: int(tlen.sum())]

    def unit_step(model):
        from taste.units.model import ctc_loss

        out = model(mel, lengths)
        return ctc_loss(out, targets, tlen) + out["commit_loss"]

    u = units_model.cfg.stride
    voc_units = torch.randint(0, vocoder.cfg.n_units, (batch, (mel.shape[-1] + u - 1) // u))
    voc_target = torch.nn.functional.pad(mel, (0, voc_units.shape[1] * vocoder.cfg.upsample - mel.shape[-1]), value=-11.5)
    voc_lengths = torch.full((batch,), voc_units.shape[1])

    def voc_step(model):
        out = model(voc_units, torch.randn(batch, model.cfg.speaker_dim), voc_lengths)
        f0 = torch.full((batch, voc_target.shape[-1]), 140.0)   # pitch terms cost what they cost on real targets
        bce, f0_l1 = pitch_losses(out, f0, voc_lengths * model.cfg.upsample, model.cfg.f0_ref_hz)
        return masked_l1(out["mel"], voc_target, voc_lengths * model.cfg.upsample) + bce + f0_l1

    result = {
        "models": source, "threads": params["shared"]["threads"],
        "unit_extraction": bench_extraction(units_model, mels),
        "synthesis": bench_synthesis(units_model, vocoder, mels, params),
        "units_train_step": {"batch_size": batch, **bench_train_step(units_model, unit_step)},
        "vocoder_train_step": {"batch_size": batch, **bench_train_step(vocoder, voc_step)},
        "stage_records": stage_records(params),
    }
    for key in ("units", "vocoder"):
        steps = params[key]["train"]["steps"]
        result[f"{key}_train_step"]["projected_training_s"] = round(result[f"{key}_train_step"]["step_s_median"] * steps, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
