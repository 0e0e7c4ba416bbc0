"""`taste vocode` (units + a reference voice -> audio): the vocoder by hand, on the unit streams of `taste units`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _vocode(args: argparse.Namespace) -> int:
    import torch

    from taste.config import load_params, set_threads
    from taste.data.audio_io import write_audio
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.metrics.speaker import SpeakerEncoder
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
    """Add `taste vocode UNITS.jsonl --speaker REF.wav -o DIR`."""
    p = subparsers.add_parser("vocode", help="speak unit streams (from `taste units`) in a reference speaker's voice")
    p.add_argument("units", help="JSON lines with a `units` list per line")
    p.add_argument("--speaker", required=True, help="audio file whose voice (resemblyzer embedding) to use")
    p.add_argument("--model", default="models/vocoder", help="folder saved by the vocoder stage")
    p.add_argument("-o", "--output", required=True, help="folder for the WAV files")
    p.set_defaults(func=_vocode)
