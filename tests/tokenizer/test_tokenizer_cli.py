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
    from taste.tokenizer.codes_file import CodesFileError
    from taste.tokenizer.model import TokenizerInputError

    (saved / "bad.json").write_text(json.dumps({"transcript": "the cat"}))
    with pytest.raises(CodesFileError, match="missing field"):
        _run(["decode", str(saved / "bad.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk")])
    (saved / "mismatch.json").write_text(json.dumps({"format": "taste-codes/1", "transcript": "the cat",
                                                    "codes": [[0, 0, 0, 0]], "speaker": [0.0] * 256}))
    with pytest.raises(CodesFileError, match="mismatch.json: 1 code tuples for the 2 words"):
        _run(["decode", str(saved / "mismatch.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk"),
              "--vocoder", str(saved / "voc")])
    # the model itself still refuses a mismatch when called directly
    from taste.tokenizer.model import TasteTokenizer

    with pytest.raises(TokenizerInputError, match="1 words but the transcript has 2"):
        TasteTokenizer.from_pretrained(saved / "tk").decode("the cat", torch.zeros(1, 4, dtype=torch.long),
                                                            torch.zeros(256))
    with pytest.raises(FileNotFoundError):
        _run(["decode", str(saved / "nope.json"), "-o", str(saved / "o.wav")])


def _encoded(saved):
    from taste.data.audio_io import write_audio

    rng = np.random.default_rng(1)
    write_audio(saved / "in.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    np.save(saved / "spk.npy", rng.standard_normal(256).astype(np.float32))
    _run(["encode", str(saved / "in.wav"), "the cat sat", "-o", str(saved / "codes.json"), "--model",
          str(saved / "tk"), "--speaker-embedding", str(saved / "spk.npy")])
    return json.loads((saved / "codes.json").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="taste-codes/9"), "unknown format"),
    (lambda d: d.update(tokenizer="0123456789abcdef"), "made by tokenizer 0123456789abcdef"),
    (lambda d: d.update(unit_rate_hz=50), "50 Hz units"),
    (lambda d: d.update(codes=[], transcript=""), "empty codes"),
    (lambda d: d.update(codes=[c[:2] for c in d["codes"][:-1]] + [d["codes"][-1]]), "widths"),
    (lambda d: d.update(codes=[[9999] * 4] * 3), r"integers in \[0, "),
    (lambda d: d.update(speaker=[0.0] * 10), "speaker embedding of size 10"),
])
def test_decode_refuses_codes_it_cannot_speak(saved, change, message):
    from taste.tokenizer.codes_file import CodesFileError

    doc = _encoded(saved)
    assert doc["format"] == "taste-codes/2" and len(doc["tokenizer"]) == 16
    change(doc)
    (saved / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(CodesFileError, match=message):
        _run(["decode", str(saved / "bad.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk"),
              "--vocoder", str(saved / "voc")])


def test_codes_of_another_tokenizer_are_refused(saved):
    """Retrained weights, same architecture: the fingerprint differs, so its codes are not spoken by the first."""
    from taste.tokenizer.codes_file import CodesFileError, tokenizer_fingerprint

    doc = _encoded(saved)
    from taste.tokenizer.model import TasteTokenizer

    other = TasteTokenizer.from_pretrained(saved / "tk")
    with torch.no_grad():
        next(other.quantizer.parameters()).add_(0.01)   # as if trained a little further
    other.save_pretrained(saved / "tk2")
    assert tokenizer_fingerprint(saved / "tk2") != doc["tokenizer"] == tokenizer_fingerprint(saved / "tk")
    with pytest.raises(CodesFileError, match=f"made by tokenizer {doc['tokenizer']}.*tk2"):
        _run(["decode", str(saved / "codes.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk2"),
              "--vocoder", str(saved / "voc")])


def test_old_format_is_read_with_a_notice(saved, capsys):
    doc = _encoded(saved)
    doc["format"] = "taste-codes/1"
    del doc["tokenizer"]
    (saved / "v1.json").write_text(json.dumps(doc))
    assert _run(["decode", str(saved / "v1.json"), "-o", str(saved / "o.wav"), "--model", str(saved / "tk"),
                 "--vocoder", str(saved / "voc")]) == 0
    assert "no tokenizer fingerprint" in capsys.readouterr().err
