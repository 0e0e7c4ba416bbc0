"""`taste encode` / `taste decode` round trip on files with a debug tokenizer and vocoder."""

import argparse
import json

import numpy as np
import pytest
import torch

from tk_helpers import make_tokenizer


@pytest.fixture()
def saved(tmp_path, asr, bpe):
    from taste.vocoder import build_debug_vocoder

    tk = make_tokenizer(asr, bpe)
    tk.save_pretrained(tmp_path / "tk")
    torch.manual_seed(0)
    build_debug_vocoder(speaker_dim=256).save_pretrained(tmp_path / "voc")
    return tmp_path


def _run(argv):
    from taste.tokenizer.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_encode_decode_round_trip_on_files(saved):
    from taste.data.audio_io import read_audio, write_audio

    rng = np.random.default_rng(0)
    write_audio(saved / "in.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    np.save(saved / "spk.npy", rng.standard_normal(256).astype(np.float32))
    assert _run(["encode", str(saved / "in.wav"), "The cat, sat!", "-o", str(saved / "codes.json"),
                 "--model", str(saved / "tk"), "--speaker-embedding", str(saved / "spk.npy")]) == 0
    doc = json.loads((saved / "codes.json").read_text())
    assert doc["transcript"] == "the cat sat"
    assert np.array(doc["codes"]).shape == (3, 4) and len(doc["speaker"]) == 256
    assert _run(["decode", str(saved / "codes.json"), "-o", str(saved / "out.wav"), "--model", str(saved / "tk"),
                 "--vocoder", str(saved / "voc"), "--seed", "1"]) == 0
    wav = read_audio(saved / "out.wav", 16000)
    assert wav.ndim == 1 and wav.size > 0
    # same seed, same file -> same audio
    _run(["decode", str(saved / "codes.json"), "-o", str(saved / "out2.wav"), "--model", str(saved / "tk"),
          "--vocoder", str(saved / "voc"), "--seed", "1"])
    np.testing.assert_array_equal(wav, read_audio(saved / "out2.wav", 16000))


def test_decode_rejects_bad_codes_files(saved):
    from taste.tokenizer.commands import CodesFileError
    from taste.tokenizer.model import TokenizerInputError

    (saved / "bad.json").write_text(json.dumps({"transcript": "the cat"}))
    with pytest.raises(CodesFileError, match="missing field"):
        _run(["decode", str(saved / "bad.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk")])
    (saved / "mismatch.json").write_text(json.dumps({"transcript": "the cat", "codes": [[0, 0, 0, 0]],
                                                    "speaker": [0.0] * 256}))
    with pytest.raises(TokenizerInputError, match="1 words but the transcript has 2"):
        _run(["decode", str(saved / "mismatch.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk"),
              "--vocoder", str(saved / "voc")])
    with pytest.raises(FileNotFoundError):
        _run(["decode", str(saved / "nope.json"), "-o", str(saved / "o.wav")])
