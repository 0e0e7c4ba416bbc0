"""`taste units` (audio -> units): the unit tokenizer by hand (`taste vocode`, its way back to audio, is in
`taste.vocoder.commands`)."""

from __future__ import annotations

import argparse
import json
import sys


def _units(args: argparse.Namespace) -> int:
    from taste.config import load_params, set_threads
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.data.features import MelConfig
    from taste.units.extract import units_from_audio
    from taste.units.model import UnitTokenizer

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    mel_cfg = MelConfig.from_dict(params["shared"]["features"], params["shared"]["sample_rate"])
    check_cfg = validation_config(params)
    wavs = [read_speech(path, cfg=check_cfg) for path in args.audio]  # every file checked before any work
    model = UnitTokenizer.from_pretrained(args.model)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for path, wav in zip(args.audio, wavs):
            units = units_from_audio(model, wav, check_cfg.sample_rate, mel_cfg, name=path)
            out.write(json.dumps({"audio": path, "rate_hz": model.cfg.rate_hz, "units": units.tolist()}) + "\n")
    finally:
        if args.output:
            out.close()
    return 0


def register(subparsers) -> None:
    """Add `taste units AUDIO... [-o units.jsonl]`."""
    p = subparsers.add_parser("units", help="speech units of audio files (JSON lines: audio, rate_hz, units)")
    p.add_argument("audio", nargs="+", help="audio files (any format, rate, channels: converted to 16 kHz mono)")
    p.add_argument("--model", default="models/units", help="folder saved by the units stage (default: models/units)")
    p.add_argument("-o", "--output", default=None, help="write JSON lines here instead of stdout")
    p.set_defaults(func=_units)
