"""A tiny stand-in for the upstream stages (prepared data, units, ASR, vocoder) in a folder, for pipeline tests."""

from pathlib import Path

import numpy as np
import torch
import yaml

from tk_helpers import SENTENCES

SPLITS = ("train", "dev", "test", "swap_global", "swap_local")


def build_fake_world(root: Path, repo_params: Path, n_per_split: int = 6, n_units: int = 32) -> dict:
    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config, save_asr
    from taste.data.audio_io import write_audio
    from taste.data.features import log_mel
    from taste.data.loaders import save_tensor_map
    from taste.data.records import Utterance, WordAlignment, write_manifest
    from taste.units.model import build_debug_unit_tokenizer
    from taste.vocoder import build_debug_vocoder

    rng = np.random.default_rng(0)
    prepared, units_dir = root / "data/prepared", root / "data/units"
    (root / "data/raw/audio").mkdir(parents=True, exist_ok=True)
    speakers = {}
    for split in SPLITS:
        utts, feats, units = [], {}, {}
        for i in range(n_per_split):
            text = " ".join(SENTENCES[i % 5].split()[:5])
            n = len(text.split())
            dur = 0.2 + 0.25 * n
            words = tuple(WordAlignment(w, 0.1 + 0.25 * j, 0.2) for j, w in enumerate(text.split()))
            uid = f"{split}_{i}"
            wav = (0.05 * rng.standard_normal(int(dur * 16000))).astype(np.float32)
            path = f"data/raw/audio/{uid}.wav"
            write_audio(root / path, wav, 16000)
            utts.append(Utterance(id=uid, audio_path=path, duration=dur, sample_rate=16000, text=text,
                                  speaker="s1", split=split, rate_wpm=None, pitch=None, words=words))
            feats[uid] = log_mel(torch.from_numpy(wav))
            units[uid] = torch.randint(0, n_units, (int(dur * 25),)).to(torch.int16)
            speakers[uid] = torch.randn(256)
        write_manifest(prepared / f"{split}.jsonl", utts)
        save_tensor_map(prepared / "features" / f"{split}.safetensors", feats, torch.float16)
        save_tensor_map(units_dir / f"{split}.safetensors", units)
    save_tensor_map(prepared / "speaker_embeddings.safetensors", speakers)
    bpe = train_bpe(SENTENCES, vocab_size=80, min_frequency=1)
    save_asr(build_asr(debug_config(), bpe, seed=0), bpe, root / "models/asr")
    torch.manual_seed(0)
    build_debug_vocoder(speaker_dim=256, n_units=n_units).save_pretrained(root / "models/vocoder")
    build_debug_unit_tokenizer(codebook_size=n_units).save_pretrained(root / "models/units")  # stretch augmentation
    params = yaml.safe_load(repo_params.read_text())
    params["units"]["codebook_size"] = n_units
    params["tokenizer"].update({"rvq": {**params["tokenizer"]["rvq"], "codebook_size": 16, "codebook_dim": 8,
                                        "kmeans_init": False},
                                "decoder": {**params["tokenizer"]["decoder"], "d_model": 32, "layers": 1, "n_heads": 2},
                                "train": {**params["tokenizer"]["train"], "text_only_steps": 2, "no_vq_steps": 2,
                                          "rvq_steps": 2, "batch_size": 4, "warmup_steps": 1},
                                "ablation_steps": 2, "eval_utterances": 4, "audio_eval_utterances": 2,
                                "bootstrap": 20, "parallel_ablations": False})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params
