"""Cost of the evaluate stage's judges on espeak speech, and the default stage time they imply.

Builds a small synthetic world (stories, espeak prompts and "continuations", a debug ASR) in a temporary folder,
times each judge per second of audio (pocketsphinx, DNSMOS, speaker encoder, study ASR, MiniLM, reference LM),
and extrapolates to `evaluation.items_per_system` x 4 systems. `--world DIR` keeps the world: it is laid out like
the repository (data/, models/asr, outputs/continuations), so notebooks/05_evaluate can be run on it from DIR.

    .venv/bin/python benchmarks/bench_evaluate.py [--items 8] [--world /tmp/evalworld]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from taste.config import load_params, set_threads

SYSTEMS = ("cascade", "s3_lm", "taslm_token", "taslm_embed")
VOICES = ("m1", "f2")


def _say(text: str, voice: str, rate: int, out: Path):
    from taste.data.audio_io import write_audio
    from taste.data.synth import synthesise

    words = tuple(text.split())
    s = synthesise(words, (None,) * len(words), f"en+{voice}", rate, 50, dither=3e-4)
    write_audio(out, s.wav, 16000)
    return s


def _utt(uid, path, s, text, voice, split, story_id=None, pair=None):
    from taste.data.records import Utterance

    return Utterance(uid, str(path), s.duration, 16000, text, voice, split, None, None, s.words, story_id=story_id,
                     pair=pair)


def build_world(root: Path, n_items: int, seed: int = 0) -> None:
    """data/raw (stories, text pool, manifest), data/prepared (test, dev, swap_global), continuations, debug ASR."""
    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import AsrConfig, build_asr, save_asr
    from taste.data.records import PairInfo, write_manifest
    from taste.data.storygen import generate_stories

    rng = random.Random(seed)
    raw, prep, audio = root / "data/raw", root / "data/prepared", root / "data/raw/audio"
    audio.mkdir(parents=True, exist_ok=True)
    prep.mkdir(parents=True, exist_ok=True)
    speech = generate_stories(seed, "sp", n_items)
    held = generate_stories(seed, "ho", 40)
    pool = generate_stories(seed, "tp", 200)
    (raw / "stories.jsonl").write_text("".join(json.dumps(s.to_dict()) + "\n" for s in speech + held))
    (raw / "text_pool.txt").write_text("\n\n".join("\n".join(s.sentences) for s in pool) + "\n")
    utts, pairs = [], []
    for i, st in enumerate(speech):
        voice = VOICES[i % 2]
        for j, sentence in enumerate(st.sentences[:3]):
            path = audio / f"{st.story_id}_{j}.wav"
            utts.append(_utt(f"{st.story_id}_{j}", path, _say(sentence, voice, 170, path), sentence, voice, "test",
                             st.story_id))
        sentence = st.sentences[1]
        for role, rate in (("slow", 125), ("fast", 220)):
            path = audio / f"pair{i}_{role}.wav"
            pairs.append(_utt(f"pair{i}_{role}", path, _say(sentence, voice, rate, path), sentence, voice,
                              "swap_global", st.story_id, PairInfo("global_rate", f"pair{i}", role)))
    write_manifest(raw / "manifest.jsonl", utts + pairs)
    write_manifest(prep / "test.jsonl", utts)
    write_manifest(prep / "dev.jsonl", [])
    write_manifest(prep / "swap_global.jsonl", pairs)
    by_id = {u.id: u for u in utts}
    for k, system in enumerate(SYSTEMS):
        rows, sdir = [], root / "outputs/continuations" / system
        sdir.mkdir(parents=True, exist_ok=True)
        for i, st in enumerate(speech):
            prompt = by_id[f"{st.story_id}_0"]
            # The S3 stand-in continues with another story's sentence: an incoherent system.
            text = st.sentences[1] if system != "s3_lm" else speech[(i + 1) % len(speech)].sentences[2]
            text = " ".join(text.split()[: 6 + rng.randint(0, 4)])
            wav = sdir / f"{prompt.id}.wav"
            _say(text, prompt.speaker if system != "s3_lm" else "f5", 170 + 10 * k, wav)
            rows.append({"prompt_id": prompt.id, "story_id": st.story_id, "prompt_text": prompt.text,
                         "prompt_wav": prompt.audio_path, "continuation_text": text, "wav": str(wav),
                         "timings": {"total_s": 0.0}})
        (sdir / "continuations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = train_bpe([u.text for u in utts] + [s for st in pool for s in st.sentences], vocab_size=300)
    cfg = AsrConfig(d_model=32, encoder_layers=2, decoder_layers=1, n_heads=2, ffn_dim=64, max_seconds=10.0)
    save_asr(build_asr(cfg, tok), tok, root / "models/asr")


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def bench(root: Path, items_default: int, quality_default: int) -> dict:
    from taste.data.audio_io import read_audio
    from taste.data.features import MelConfig
    from taste.data.records import read_manifest
    from taste.evaluation import coherence, report
    from taste.metrics.quality import dnsmos
    from taste.metrics.recognizer import Pocketsphinx
    from taste.metrics.speaker import SpeakerEncoder

    wavs = [read_audio(c["wav"]) for s in SYSTEMS
            for c in map(json.loads, (root / "outputs/continuations" / s / "continuations.jsonl").open())]
    seconds = sum(len(w) for w in wavs) / 16000
    stories = coherence.read_stories(root / "data/raw/stories.jsonl")
    sentences = [s for st in stories for s in st.sentences]
    ps, t_ps_build = timed(Pocketsphinx, sentences)
    _, t_ps = timed(lambda: [ps.transcribe(w) for w in wavs])
    dnsmos(wavs[0])  # model load
    _, t_dns = timed(lambda: [dnsmos(w) for w in wavs])
    spk = SpeakerEncoder()
    spk.embed(wavs[0])
    _, t_spk = timed(lambda: [spk.embed(w) for w in wavs])
    asr, t_asr_load = timed(report.asr_transcriber, root / "models/asr", MelConfig())
    texts, t_asr = timed(asr, wavs)
    encoder, t_enc_load = timed(coherence.load_sentence_encoder)
    _, t_enc = timed(coherence.embedding_similarity, encoder, sentences[: len(wavs)], sentences[: len(wavs)])
    speech_ids = {u.story_id for u in read_manifest(root / "data/raw/manifest.jsonl")}
    lm, t_lm = timed(lambda: coherence.KneserNeyLM().fit(coherence.reference_sentences(stories, speech_ids)))
    per_s = {"pocketsphinx": t_ps / seconds, "dnsmos": t_dns / seconds, "speaker": t_spk / seconds,
             "study_asr": t_asr / seconds}
    fixed = {"pocketsphinx_build": t_ps_build, "asr_load": t_asr_load, "minilm_load": t_enc_load,
             "minilm_per_item": t_enc / len(wavs), "reference_lm_fit": t_lm}
    mean_s = seconds / len(wavs)
    default_audio_s = items_default * len(SYSTEMS) * mean_s
    quality_audio_s = quality_default * len(SYSTEMS) * mean_s
    estimate = (default_audio_s * (per_s["pocketsphinx"] + per_s["speaker"] + per_s["study_asr"])
                + quality_audio_s * per_s["dnsmos"] + sum(fixed.values()) + items_default * len(SYSTEMS)
                * fixed["minilm_per_item"] * 2)
    return {"items": len(wavs), "audio_seconds": round(seconds, 1), "mean_item_seconds": round(mean_s, 2),
            "seconds_per_audio_second": {k: round(v, 3) for k, v in per_s.items()},
            "fixed_seconds": {k: round(v, 2) for k, v in fixed.items()},
            "estimated_default_judging_s": round(estimate, 1),
            "items_default": items_default, "quality_items_default": quality_default}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=8, help="prompts in the synthetic world")
    parser.add_argument("--world", default=None, help="build (and keep) the world here")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    root = Path(args.world) if args.world else Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    _, t_build = timed(build_world, root, args.items)
    ev = params["evaluation"]
    result = bench(root, ev["items_per_system"], ev["quality_items_per_system"])
    result["world_build_s"] = round(t_build, 1)
    result["world"] = str(root)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
