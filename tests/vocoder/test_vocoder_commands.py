"""`taste vocode` on the debug vocoder (the CLI the lead wires in through register()), speaking a unit stream in the
format `taste units` writes."""

import argparse
import json

import numpy as np
import soundfile as sf
import torch

from taste.config import REPO_ROOT
from taste.data.audio_io import write_audio
from taste.vocoder.commands import register
from taste.vocoder.model import build_debug_vocoder


def _parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    register(parser.add_subparsers(dest="command"))
    return parser


def test_vocode(tmp_path, monkeypatch):
    torch.manual_seed(0)
    build_debug_vocoder(n_units=32, speaker_dim=256).save_pretrained(tmp_path / "vocoder")
    t = np.arange(16000) / 16000
    write_audio(tmp_path / "a.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    units = torch.randint(0, 32, (25,), generator=torch.Generator().manual_seed(0)).tolist()
    (tmp_path / "u.jsonl").write_text(json.dumps({"audio": str(tmp_path / "a.wav"), "rate_hz": 25, "units": units})
                                      + "\n", encoding="utf-8")

    monkeypatch.setattr("taste.data.speaker_embed.BatchSpeakerEncoder.embed", lambda self, wav: np.ones(256, np.float32))
    args = _parser().parse_args(["vocode", str(tmp_path / "u.jsonl"), "--speaker", str(tmp_path / "a.wav"),
                                 "--model", str(tmp_path / "vocoder"), "-o", str(tmp_path / "out")])
    assert args.func(args) == 0
    out = tmp_path / "out" / "a.wav"
    assert out.exists()
    wav, sr = sf.read(out)
    assert sr == 16000
    expected = len(units) / 25 * 16000  # 25 units at 25 Hz: one second
    assert abs(len(wav) - expected) <= 0.02 * expected, (len(wav), expected)
