"""A tiny stand-in for the stages upstream of taslm, in a folder: data, units, codes, ASR, tokenizers, vocoder."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml
from fakes import SENTENCES

N_UNITS = 32


def _split(root: Path, split: str, n: int, rng, speakers: dict, units_all: dict):
    from taste.data.audio_io import write_audio
    from taste.data.records import Utterance, WordAlignment

    utts, units = [], {}
    for i in range(n):
        text = " ".join(SENTENCES[(i + len(split)) % len(SENTENCES)].split()[:6])
        words = tuple(WordAlignment(w, 0.1 + 0.25 * j, 0.2) for j, w in enumerate(text.split()))
        dur = 0.2 + 0.25 * len(words)
        uid = f"{split}_{i}"
        path = f"data/raw/audio/{uid}.wav"
        write_audio(root / path, (0.05 * rng.standard_normal(int(dur * 16000))).astype(np.float32), 16000)
        utts.append(Utterance(id=uid, audio_path=path, duration=dur, sample_rate=16000, text=text,
                              speaker=f"s{split}", split=split, rate_wpm=None, pitch=None, words=words,
                              story_id="st1"))
        units[uid] = torch.randint(0, N_UNITS, (int(dur * 25),)).to(torch.int16)
        speakers[uid] = torch.randn(256)
    units_all[split] = units
    return utts


def build_world(root: Path, repo_params: Path, n_per_split: int = 6) -> dict:
    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config, save_asr
    from taste.data.features import log_mel
    from taste.data.loaders import save_tensor_map
    from taste.data.records import write_manifest
    from taste.data.audio_io import read_audio
    from taste.tokenizer import TasteTokenizer
    from taste.tokenizer import debug_config as taste_debug
    from taste.units.model import build_debug_unit_tokenizer
    from taste.vocoder import build_debug_vocoder

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    (root / "data/raw/audio").mkdir(parents=True, exist_ok=True)
    pool = "\n\n".join("\n".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(8))
    (root / "data/raw/text_pool.txt").write_text(pool + "\n")
    bpe = train_bpe(SENTENCES * 2, vocab_size=80, min_frequency=1)
    asr = build_asr(debug_config(), bpe, seed=0)
    save_asr(asr, bpe, root / "models/asr")
    cfg = taste_debug(vocab_size=bpe.get_vocab_size(), n_units=N_UNITS)
    cfg = replace(cfg, aggregator=replace(cfg.aggregator, d_model=asr.config.d_model, n_heads=2,
                                          max_tokens=asr.config.max_target_positions,
                                          ffn_dim=asr.config.decoder_ffn_dim))
    main = TasteTokenizer.from_asr(cfg, asr, bpe, stage="rvq").eval()
    main.save_pretrained(root / "models/taste/tokenizer")
    text_only = TasteTokenizer.from_asr(cfg, asr, bpe, stage="text_only").eval()
    text_only.save_pretrained(root / "models/taste/text_only")
    build_debug_vocoder(speaker_dim=256, n_units=N_UNITS).save_pretrained(root / "models/vocoder")
    build_debug_unit_tokenizer(codebook_size=N_UNITS).eval().save_pretrained(root / "models/units")
    speakers, units = {}, {}
    for split in ("train", "dev", "test"):
        utts = _split(root, split, n_per_split, rng, speakers, units)
        write_manifest(root / "data/prepared" / f"{split}.jsonl", utts)
        save_tensor_map(root / "data/units" / f"{split}.safetensors", units[split])
        codes = {u.id: main.encode(log_mel(torch.from_numpy(read_audio(root / u.audio_path))), u.text).codes
                 for u in utts}
        save_tensor_map(root / "data/taste_codes" / f"{split}.safetensors",
                        {k: v.to(torch.int16) for k, v in codes.items()})
    save_tensor_map(root / "data/prepared/speaker_embeddings.safetensors", speakers)
    params = yaml.safe_load(repo_params.read_text())
    smoke = yaml.safe_load((repo_params.parent / "profiles/smoke.yaml").read_text())["lm"]
    lm = params["lm"]
    lm["text_lm"].update({k: v for k, v in smoke["text_lm"].items() if k != "train"}, context=16)
    for part in ("text_lm", "taslm", "s3_lm"):
        lm[part]["train"].update(steps=3, batch_size=4, warmup_steps=1)
    lm["text_lm"]["heldout_share"] = 0.25
    lm["continuation"].update(n_prompts=3, target_words=3, prompt_seconds=[0.5, 1.5])
    params["units"]["codebook_size"] = N_UNITS
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params
