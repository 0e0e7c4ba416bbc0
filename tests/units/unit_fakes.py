"""A tiny synthetic corpus: each phone is a fixed spectral pattern, utterances are random phone strings."""

from __future__ import annotations

import numpy as np
import torch

from taste.data.records import PhoneAlignment, Utterance
from taste.units.phones import PhoneVocab

PHONES = ("a", "b", "k", "s", "t", "u")
VOCAB = PhoneVocab(PHONES)


class DictStore(dict):
    """Stands in for taste.data.loaders.FeatureStore: `.get(id) -> Tensor`."""


def fake_corpus(n_utts: int = 12, n_mels: int = 80, seed: int = 0, fps: int = 100):
    """-> (utterances with phone alignments, DictStore id -> log-mel [n_mels, F])."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 2.0, size=(len(PHONES), n_mels)).astype(np.float32)
    utts, feats = [], DictStore()
    for i in range(n_utts):
        frames, phones, t = [], [], 0
        for _ in range(int(rng.integers(4, 9))):
            p = int(rng.integers(len(PHONES)))
            dur = int(rng.integers(8, 20))
            frames.append(patterns[p][:, None] + 0.3 * rng.normal(size=(n_mels, dur)).astype(np.float32))
            phones.append(PhoneAlignment(PHONES[p], t / fps, dur / fps))
            t += dur
        uid = f"utt{i:03d}"
        utts.append(Utterance(id=uid, audio_path=f"data/raw/audio/{uid}.wav", duration=t / fps, sample_rate=16000,
                              text="x", speaker=f"spk{i % 2}", split="train", rate_wpm=None, pitch=None,
                              phones=tuple(phones)))
        feats[uid] = torch.from_numpy(np.concatenate(frames, axis=1))
    return utts, feats


def write_fake_prepared(root, n_per_split=None, seed: int = 0) -> dict:
    """A tiny data/prepared lookalike (manifests, wavs, features, F0 tracks, speaker embeddings, phones.json).

    Each phone is a fixed chord; returns params (default sizes overridden to debug size) pointing at `root`.
    """
    import json
    from pathlib import Path

    from taste.data.audio_io import write_audio
    from taste.data.features import MelConfig, log_mel
    from taste.data.loaders import save_tensor_map
    from taste.data.records import write_manifest

    root = Path(root)
    rng = np.random.default_rng(seed)
    n_per_split = n_per_split or {"train": 12, "dev": 3, "test": 4}
    freqs = {p: (200 + 90 * i, 900 + 310 * i) for i, p in enumerate(PHONES)}
    feats_all, speakers = {}, {}
    for split, n in n_per_split.items():
        utts, feats, pitch = [], {}, {}
        for i in range(n):
            uid = f"{split}{i:03d}"
            pieces, phones, t = [np.zeros(800, np.float32)], [PhoneAlignment("_", 0.0, 0.05)], 0.05
            f0_per_sample = [np.zeros(800, np.float32)]   # each chord's lower tone is its F0
            for _ in range(int(rng.integers(4, 8))):
                p = PHONES[int(rng.integers(len(PHONES)))]
                dur = float(rng.uniform(0.06, 0.15))
                tt = np.arange(int(dur * 16000)) / 16000
                pieces.append((0.2 * np.sin(2 * np.pi * freqs[p][0] * tt) + 0.1 * np.sin(2 * np.pi * freqs[p][1] * tt))
                              .astype(np.float32))
                f0_per_sample.append(np.full(len(tt), freqs[p][0], np.float32))
                phones.append(PhoneAlignment(p, t, len(tt) / 16000))
                t += len(tt) / 16000
            wav = np.concatenate(pieces) + rng.normal(0, 3e-4, sum(len(x) for x in pieces)).astype(np.float32)
            path = root / "audio" / f"{uid}.wav"
            write_audio(path, wav, 16000)
            utts.append(Utterance(id=uid, audio_path=str(path), duration=len(wav) / 16000, sample_rate=16000,
                                  text="a b", speaker=f"spk{i % 2}", split=split, rate_wpm=None, pitch=None,
                                  phones=tuple(phones)))
            feats[uid] = log_mel(wav, MelConfig())
            pitch[uid] = torch.from_numpy(np.concatenate(f0_per_sample)[::160][: feats[uid].shape[-1]].copy())
            speakers[uid] = torch.from_numpy(rng.normal(size=256).astype(np.float32))
        write_manifest(root / f"{split}.jsonl", utts)
        save_tensor_map(root / "features" / f"{split}.safetensors", feats, dtype=torch.float16)
        save_tensor_map(root / "pitch" / f"{split}.safetensors", pitch)
        feats_all.update(feats)
    save_tensor_map(root / "speaker_embeddings.safetensors", speakers)
    (root / "phones.json").write_text(json.dumps(["_"] + list(PHONES)))
    from taste.config import REPO_ROOT, deep_merge, load_params

    # params.yaml with tiny models over it: every key the stages read comes from the real file (no default stands in)
    return deep_merge(load_params(REPO_ROOT / "params.yaml"), {
        "shared": {"seed": 0, "sample_rate": 16000, "threads": 1, "mixed_precision": "no",
                   "features": {"n_fft": 400, "hop_length": 160, "n_mels": 80, "f_min": 0, "f_max": 8000},
                   "paths": {"prepared": str(root), "units": str(root / "units"), "models": str(root / "models"),
                             "outputs": str(root / "outputs")}},
        "units": {"rate_hz": 25, "codebook_size": 16, "d_model": 32, "encoder_layers": 1, "head_layers": 1,
                  "n_heads": 2, "commitment_weight": 0.25, "frame_phone_weight": 0.5,
                  "frame_pitch_weight": 0.5,
                  "train": {"steps": 30, "batch_size": 4, "lr": 0.003, "warmup_steps": 3, "bucket_by_length": False}},
        "vocoder": {"d_model": 32, "layers": 1, "n_heads": 2, "conv_layers": 1, "griffin_lim_iters": 4,
                    "eval_utterances": 3,
                    "train": {"steps": 30, "batch_size": 4, "lr": 0.003, "warmup_steps": 3, "bucket_by_length": False}},
        "evaluation": {"bootstrap": 20},
    })
