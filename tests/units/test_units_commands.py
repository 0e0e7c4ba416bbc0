"""`taste units` on the debug model (the CLI the lead wires in through register()); `taste vocode` is tested in
tests/vocoder/test_vocoder_commands.py."""

import argparse
import json

import numpy as np
import pytest
import torch

from taste.config import REPO_ROOT
from taste.data.audio_io import write_audio
from taste.units.commands import register
from taste.data.validate import AudioValidationError
from taste.units.model import build_debug_unit_tokenizer


def _parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    register(parser.add_subparsers(dest="command"))
    return parser


def test_units(tmp_path, capsys):
    torch.manual_seed(0)
    units_model = build_debug_unit_tokenizer()
    units_model(torch.randn(2, 80, 100), torch.tensor([100, 100]))
    units_model.save_pretrained(tmp_path / "units")
    t = np.arange(16000) / 16000
    write_audio(tmp_path / "a.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    write_audio(tmp_path / "bad.wav", np.zeros(16000, dtype=np.float32), 22050)

    parser = _parser()
    args = parser.parse_args(["units", str(tmp_path / "a.wav"), "--model", str(tmp_path / "units"),
                              "-o", str(tmp_path / "u.jsonl")])
    assert args.func(args) == 0
    row = json.loads((tmp_path / "u.jsonl").read_text())
    assert row["rate_hz"] == 25 and len(row["units"]) == 25

    # any sample rate is resampled (with a notice); silence is refused, naming the file
    args = parser.parse_args(["units", str(tmp_path / "bad.wav"), "--model", str(tmp_path / "units")])
    with pytest.raises(AudioValidationError, match=f"{tmp_path / 'bad.wav'}: silence"):
        args.func(args)
    t22 = np.arange(22050) / 22050
    write_audio(tmp_path / "b.wav", (0.2 * np.sin(2 * np.pi * 220 * t22)).astype(np.float32), 22050)
    args = parser.parse_args(["units", str(tmp_path / "b.wav"), "--model", str(tmp_path / "units"),
                              "-o", str(tmp_path / "b.jsonl")])
    assert args.func(args) == 0
    assert "resampled from 22050 Hz to 16000 Hz" in capsys.readouterr().err
