"""`taste vocode` (units + a reference voice -> audio): the vocoder by hand, on the unit streams of `taste units`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class UnitsFileError(ValueError):
    """A units file for `taste vocode` that is not JSON lines of objects with a `units` list of integers (what
    `taste units` writes); the message names the file and line."""


def read_units_file(path: str | Path) -> list[dict]:
    """The rows of a units JSON-lines file (blank lines skipped), each checked: an object whose `units` is a
    non-empty list of non-negative integers. Raises FileNotFoundError / UnitsFileError, naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: units file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnitsFileError(f"{path}: not a text file of JSON lines ({exc})") from exc
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnitsFileError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise UnitsFileError(f"{where}: expected a JSON object with a `units` list, got a JSON "
                                 f"{type(row).__name__}")
        units = row.get("units")
        if not isinstance(units, list) or not units:
            raise UnitsFileError(f"{where}: `units` must be a non-empty list (as `taste units` writes)")
        if not all(isinstance(u, int) and not isinstance(u, bool) and u >= 0 for u in units):
            raise UnitsFileError(f"{where}: `units` must be non-negative integers")
        rows.append(row)
    if not rows:
        raise UnitsFileError(f"{path}: no unit streams (the file is empty)")
    return rows


def _vocode(args: argparse.Namespace) -> int:
    import torch

    from taste.config import load_params, set_threads
    from taste.data.audio_io import write_audio
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.data.speaker_embed import conditioning_encoder
    from taste.vocoder.model import UnitVocoder
    from taste.vocoder.pipeline import mel_config

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    sr = params["shared"]["sample_rate"]
    reference = read_speech(args.speaker, cfg=validation_config(params))
    lines = read_units_file(args.units)
    model = UnitVocoder.from_pretrained(args.model)
    speaker = torch.from_numpy(conditioning_encoder(params).embed(reference))
    out_dir = Path(args.output)
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
