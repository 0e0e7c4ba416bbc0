"""`taste transcribe`: the stage's ASR on audio files (what TASLM does to speech prompts, by hand)."""

from __future__ import annotations

import argparse
import json
import sys


def _transcribe(args: argparse.Namespace) -> int:
    from taste.asr.bpe import load_bpe
    from taste.asr.features import pad_mels
    from taste.asr.whisper import load_asr, transcribe
    from taste.config import load_params, set_threads
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.data.features import MelConfig, log_mel

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    mel_cfg = MelConfig.from_dict(params["shared"]["features"], params["shared"]["sample_rate"])
    check_cfg = validation_config(params)
    mels = [log_mel(read_speech(p, cfg=check_cfg), mel_cfg) for p in args.audio]  # every file checked before work
    model, tok = load_asr(args.model), load_bpe(args.model)
    batch, lengths = pad_mels(mels)
    texts = transcribe(model, tok, batch, lengths)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for path, text in zip(args.audio, texts):
            out.write(json.dumps({"audio": path, "text": text}) + "\n")
    finally:
        if args.output:
            out.close()
    return 0


def register(subparsers) -> None:
    """Add `taste transcribe AUDIO... [--model DIR] [-o out.jsonl]`."""
    p = subparsers.add_parser("transcribe", help="transcribe audio files with the stage's Whisper (JSON lines)")
    p.add_argument("audio", nargs="+", help="audio files (any format, rate, channels: converted to 16 kHz mono)")
    p.add_argument("--model", default="models/asr", help="folder saved by the asr stage (default: models/asr)")
    p.add_argument("-o", "--output", default=None, help="write JSON lines here instead of stdout")
    p.set_defaults(func=_transcribe)
