"""`taste units` (audio -> units) and `taste vocode` (units + a reference voice -> audio): the two models by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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


def _vocode(args: argparse.Namespace) -> int:
    import torch

    from taste.config import load_params, set_threads
    from taste.data.audio_io import write_audio
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.evaluation.speaker import SpeakerEncoder
    from taste.vocoder.model import UnitVocoder
    from taste.vocoder.pipeline import mel_config

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    sr = params["shared"]["sample_rate"]
    reference = read_speech(args.speaker, cfg=validation_config(params))
    model = UnitVocoder.from_pretrained(args.model)
    speaker = torch.from_numpy(SpeakerEncoder().embed(reference))
    out_dir = Path(args.output)
    lines = [json.loads(line) for line in Path(args.units).read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(lines):
        wav = model.synthesise(torch.tensor(row["units"]), speaker, mel_config(params))
        path = out_dir / f"{Path(row.get('audio', f'utt{i}')).stem}.wav"
        write_audio(path, wav, sr)
        print(path)
    return 0


def register(subparsers) -> None:
    """Add `taste units AUDIO... [-o units.jsonl]` and `taste vocode UNITS.jsonl --speaker REF.wav -o DIR`."""
    p = subparsers.add_parser("units", help="speech units of audio files (JSON lines: audio, rate_hz, units)")
    p.add_argument("audio", nargs="+", help="audio files (any format, rate, channels: converted to 16 kHz mono)")
    p.add_argument("--model", default="models/units", help="folder saved by the units stage (default: models/units)")
    p.add_argument("-o", "--output", default=None, help="write JSON lines here instead of stdout")
    p.set_defaults(func=_units)
    p = subparsers.add_parser("vocode", help="speak unit streams (from `taste units`) in a reference speaker's voice")
    p.add_argument("units", help="JSON lines with a `units` list per line")
    p.add_argument("--speaker", required=True, help="audio file whose voice (resemblyzer embedding) to use")
    p.add_argument("--model", default="models/vocoder", help="folder saved by the vocoder stage")
    p.add_argument("-o", "--output", required=True, help="folder for the WAV files")
    p.set_defaults(func=_vocode)
