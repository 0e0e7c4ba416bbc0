"""One input contract for every command (issue 14 §3), through `taste.cli.main` as a user meets it.

Every command that takes audio reads it through taste.data.validate.read_speech: any format, rate and channel count
is converted with a one-line notice; bad audio or an implausible transcript is refused before any model loads, as one
line `taste <cmd>: error: <file>: <problem>` on stderr and exit status 2 (a traceback only with --debug). codes.json
names the tokenizer that made it; decode and swap refuse another tokenizer's codes, a wrong-sized speaker embedding,
empty codes and files too old to carry a format. Debug-size models (the tokenizer tests' factories)."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent / "tokenizer"))

from tk_helpers import SENTENCES, make_tokenizer  # noqa: E402

from taste.cli import main  # noqa: E402

PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")
TEN_WORDS = "one two three four five six seven eight nine ten"


def _speech(seconds: float, sr: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


def _bad_audio(kind: str, d: Path) -> Path:
    p = d / f"{kind}.wav"
    if kind == "silent":
        sf.write(p, np.zeros(16000, np.float32), 16000)
    elif kind == "nan":
        w = _speech(1.0).astype(np.float32)
        w[100:200] = np.nan
        sf.write(p, w, 16000, subtype="FLOAT")
    elif kind == "truncated":
        sf.write(p, _speech(1.0), 16000, subtype="PCM_16")
        p.write_bytes(p.read_bytes()[:6000])
    elif kind == "clipped":
        sf.write(p, np.clip(10 * _speech(1.0), -1, 1), 16000, subtype="PCM_16")
    elif kind == "short":
        sf.write(p, _speech(0.1), 16000)
    elif kind == "corrupt":
        p.write_bytes(b"RIFX not audio at all" * 20)
    return p


PROBLEMS = {"silent": "silence", "nan": "NaN or infinite", "truncated": "truncated WAV", "clipped": "clipped",
            "short": "too short", "corrupt": "unreadable or corrupt", "missing": "missing"}


def _argv(command: str, audio: Path, tmp: Path, text: str = "hello there") -> list[str]:
    """The command line of each audio-taking command; the models need not exist: audio is checked first."""
    nowhere = str(tmp / "no_model")
    return {
        "encode": ["encode", str(audio), text, "-o", str(tmp / "codes.json"), "--model", nowhere],
        "transcribe": ["--params", PARAMS, "transcribe", str(audio), "--model", nowhere],
        "units": ["--params", PARAMS, "units", str(audio), "--model", nowhere],
        "vocode": ["--params", PARAMS, "vocode", str(tmp / "units.jsonl"), "--speaker", str(audio), "--model",
                   nowhere, "-o", str(tmp / "out")],
        "continue": ["--params", PARAMS, "continue", str(audio), text, "-o", str(tmp / "cont.wav")],
    }[command]


def _one_error_line(capsys, command: str) -> str:
    """The only line on stderr. In a `taste` process the CLI turns the weight-loading progress bars off
    (HF_HUB_DISABLE_PROGRESS_BARS); in this test process transformers is imported earlier, so they are dropped here."""
    err = [x for x in capsys.readouterr().err.strip().splitlines() if not re.search(r"\d+/\d+ \[", x)]
    assert len(err) == 1, err
    assert err[0].startswith(f"taste {command}: error: "), err[0]
    return err[0]


@pytest.mark.parametrize("command", ["encode", "transcribe", "units", "vocode", "continue"])
@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_every_audio_command_refuses_bad_audio_in_one_line(tmp_path, capsys, command, kind):
    audio = tmp_path / "nope.wav" if kind == "missing" else _bad_audio(kind, tmp_path)
    assert main(_argv(command, audio, tmp_path)) == 2
    line = _one_error_line(capsys, command)
    assert str(audio) in line and PROBLEMS[kind] in line


@pytest.mark.parametrize("command", ["encode", "continue"])
def test_a_transcript_implausible_for_the_audio_is_refused(tmp_path, capsys, command):
    audio = tmp_path / "brief.wav"
    sf.write(audio, _speech(0.3), 16000)
    assert main(_argv(command, audio, tmp_path, text=TEN_WORDS)) == 2
    line = _one_error_line(capsys, command)
    assert str(audio) in line and "implausible transcript length" in line


def test_debug_flag_keeps_the_traceback(tmp_path):
    from taste.data.validate import AudioValidationError

    audio = _bad_audio("silent", tmp_path)
    with pytest.raises(AudioValidationError, match="silence"):
        main(["--debug"] + _argv("encode", audio, tmp_path))


def test_a_bug_keeps_its_traceback_and_a_resume_mismatch_is_one_line(tmp_path, capsys, monkeypatch):
    import taste.tokenizer.commands as commands
    from taste.training.loop import ResumeMismatchError

    audio = tmp_path / "x.wav"

    def bug(*a, **k):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(commands, "encode_file", bug)
    with pytest.raises(RuntimeError, match="internal bug"):
        main(_argv("encode", audio, tmp_path))

    def mismatch(*a, **k):
        raise ResumeMismatchError(tmp_path / "run", ["train.lr"])

    monkeypatch.setattr(commands, "encode_file", mismatch)
    assert main(_argv("encode", audio, tmp_path)) == 2
    assert "refusing to resume" in _one_error_line(capsys, "encode")


@pytest.mark.parametrize("module, name", [("taste.data.synth", "SynthesisError"),
                                          ("taste.units.s3_pretrained", "S3TokenizerUnavailable")])
def test_user_runtime_errors_are_one_line(tmp_path, capsys, monkeypatch, module, name):
    import importlib

    import taste.tokenizer.commands as commands

    error = getattr(importlib.import_module(module), name)

    def fail(*a, **k):
        raise error("the user's problem")

    monkeypatch.setattr(commands, "encode_file", fail)
    assert main(_argv("encode", tmp_path / "x.wav", tmp_path)) == 2
    assert "the user's problem" in _one_error_line(capsys, "encode")


def test_every_listed_user_runtime_error_exists():
    """Every (module, class) in USER_RUNTIME_ERRORS names a real exception class: user_errors() has no guard that
    would silently skip a misspelt entry."""
    import importlib

    from taste.cli import USER_RUNTIME_ERRORS, user_errors

    assert len(set(USER_RUNTIME_ERRORS)) == len(USER_RUNTIME_ERRORS)
    for module, name in USER_RUNTIME_ERRORS:
        cls = getattr(importlib.import_module(module), name)  # ModuleNotFoundError / AttributeError if misspelt
        assert isinstance(cls, type) and issubclass(cls, Exception), (module, name)
        assert cls in user_errors()


def test_a_bare_value_error_is_a_bug_and_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    """Only the project's own ValueError subclasses are user errors; a bare ValueError (numpy's, torch's, a bug's)
    reaches the top with its traceback."""
    import taste.tokenizer.commands as commands
    from taste.cli import is_user_error
    from taste.data.validate import AudioValidationError

    def bug(*a, **k):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(commands, "encode_file", bug)
    with pytest.raises(ValueError, match="broadcast"):
        main(_argv("encode", tmp_path / "x.wav", tmp_path))
    assert capsys.readouterr().err == ""
    assert not is_user_error(ValueError("x")) and not is_user_error(json.JSONDecodeError("x", "", 0))
    assert is_user_error(AudioValidationError("x")) and is_user_error(FileNotFoundError("x"))
    assert not is_user_error(RuntimeError("x")) and not is_user_error(KeyError("x"))


def test_progress_bar_setting_lasts_one_command_and_skips_stage_kernels(tmp_path, monkeypatch):
    """HF_HUB_DISABLE_PROGRESS_BARS is set for a command's duration only (unless the user set it), and never around
    `taste stage`, whose notebook kernels inherit the environment."""
    import os

    import taste.stages
    import taste.tokenizer.commands as commands

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    seen = {}

    def encode(*a, **k):
        seen["encode"] = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
        raise FileNotFoundError("stop here")

    def run_stage(name, params_path=None):
        seen["stage"] = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")

    monkeypatch.setattr(commands, "encode_file", encode)
    monkeypatch.setattr(taste.stages, "run_stage", run_stage)
    assert main(_argv("encode", tmp_path / "x.wav", tmp_path)) == 2
    assert seen["encode"] == "1" and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    assert main(["--params", PARAMS, "stage", "units"]) == 0
    assert seen["stage"] is None and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # the user's choice wins, and stays
    assert main(_argv("encode", tmp_path / "x.wav", tmp_path)) == 2
    assert seen["encode"] == "0" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"


def _bad_npy(kind: str, d: Path) -> Path:
    p = d / f"{kind}.npy"
    np.save(d / "good.npy", np.ones(256, np.float32))
    good = (d / "good.npy").read_bytes()
    if kind == "truncated":
        p.write_bytes(good[:-100])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("0.1 0.2 0.3\n")
    elif kind == "objects":
        np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "strings":
        np.save(p, np.array(["a", "b"]))
    elif kind == "npz":
        p = d / "spk.npz"
        np.savez(p, embedding=np.ones(256, np.float32))
    return p


@pytest.mark.parametrize("kind, message", [
    ("truncated", "not a readable .npy speaker embedding .*not fully written"),
    ("empty", r"not a \.npy file \(empty\)"),
    ("text", r"not a \.npy file \(no NumPy header\)"),
    ("objects", "not a readable .npy speaker embedding .*Object arrays"),
    ("strings", "not numbers"),
    ("npz", r"an \.npz archive \(embedding\)"),
    ("missing", "speaker embedding file not found"),
])
def test_encode_names_a_bad_speaker_embedding_file_in_one_line(tmp_path, capsys, kind, message):
    """np.load's own errors do not name the file; encode's refusal does, before any audio or model is read."""
    path = tmp_path / "nope.npy" if kind == "missing" else _bad_npy(kind, tmp_path)
    argv = _argv("encode", tmp_path / "x.wav", tmp_path) + ["--speaker-embedding", str(path)]
    assert main(argv) == 2
    line = _one_error_line(capsys, "encode")
    assert f"error: {path}: " in line and re.search(message, line), line


# --- encode / decode / swap on a debug tokenizer -------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config

    d = tmp_path_factory.mktemp("models")
    bpe = train_bpe(SENTENCES, vocab_size=80, min_frequency=1)
    asr = build_asr(debug_config(), bpe, seed=0)
    tk = make_tokenizer(asr, bpe)
    tk.save_pretrained(d / "tk")
    with torch.no_grad():  # the same architecture trained a little further: another tokenizer
        next(tk.quantizer.parameters()).add_(0.01)
    tk.save_pretrained(d / "tk2")
    np.save(d / "spk.npy", np.random.default_rng(0).standard_normal(256).astype(np.float32))
    np.save(d / "spk10.npy", np.zeros(10, np.float32))
    return d


def _encode(models, tmp_path, capsys, name="codes.json", model="tk", audio=None, text="the cat sat"):
    if audio is None:
        audio = tmp_path / "in.wav"
        sf.write(audio, _speech(1.5), 16000)
    out = tmp_path / name
    assert main(["encode", str(audio), text, "-o", str(out), "--model", str(models / model),
                 "--speaker-embedding", str(models / "spk.npy")]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_encode_accepts_a_44k_stereo_24_bit_flac_with_a_notice(models, tmp_path, capsys):
    """The issue's recording in miniature (the debug encoder's window is 2 s; the 11 s file itself is read in
    tests/data/test_read_speech.py)."""
    from taste.tokenizer.codes_file import FORMAT, tokenizer_fingerprint
    from taste.tokenizer.model import TasteTokenizer

    audio = tmp_path / "recording.flac"
    sf.write(audio, _speech(1.8, 44100, channels=2), 44100, subtype="PCM_24")
    assert main(["encode", str(audio), "the cat sat on the mat", "-o", str(tmp_path / "codes.json"), "--model",
                 str(models / "tk"), "--speaker-embedding", str(models / "spk.npy")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if str(audio) in line]
    assert err == [f"{audio}: downmixed 2 channels to mono", f"{audio}: resampled from 44100 Hz to 16000 Hz"]
    doc = json.loads((tmp_path / "codes.json").read_text())
    assert doc["format"] == FORMAT and doc["tokenizer"] == tokenizer_fingerprint(models / "tk")
    assert len(doc["tokenizer"]) == 16 and doc["tokenizer"] != tokenizer_fingerprint(models / "tk2")
    assert doc["unit_rate_hz"] == TasteTokenizer.from_pretrained(models / "tk").cfg.unit_rate_hz
    assert len(doc["codes"]) == 6


def test_encode_refuses_audio_longer_than_the_encoder_window_naming_the_file(models, tmp_path, capsys):
    audio = tmp_path / "long.flac"
    sf.write(audio, _speech(11.0, 44100, channels=2), 44100, subtype="PCM_24")
    text = "the cat sat on the mat and then the dog came in and sat by the door"
    assert main(["encode", str(audio), text, "-o", str(tmp_path / "codes.json"), "--model", str(models / "tk"),
                 "--speaker-embedding", str(models / "spk.npy")]) == 2
    line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("taste encode: error:")]
    assert len(line) == 1 and str(audio) in line[0] and "longer than the speech encoder's window" in line[0]


def test_encode_refuses_a_wrong_sized_speaker_embedding(models, tmp_path, capsys):
    audio = tmp_path / "in.wav"
    sf.write(audio, _speech(1.5), 16000)
    assert main(["encode", str(audio), "the cat sat", "-o", str(tmp_path / "c.json"), "--model", str(models / "tk"),
                 "--speaker-embedding", str(models / "spk10.npy")]) == 2
    line = _one_error_line(capsys, "encode")
    assert "spk10.npy" in line and "10 values" in line and "256" in line


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(tokenizer="0123456789abcdef"), "made by tokenizer 0123456789abcdef"),
    (lambda d: d.update(speaker=[0.0] * 10), "speaker embedding of size 10; this tokenizer needs 256"),
    (lambda d: d.update(codes=[], transcript=""), "empty codes or transcript"),
    (lambda d: d.update(codes=[]), "empty codes or transcript"),
    (lambda d: [d.pop("format"), d.pop("tokenizer")], "no format version .* encode the audio again"),
    (lambda d: d.update(format="taste-codes/7"), "unknown format 'taste-codes/7'"),
])
def test_decode_refuses_codes_it_cannot_speak_in_one_line(models, tmp_path, capsys, change, message):
    doc = _encode(models, tmp_path, capsys)
    change(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    assert main(["decode", str(tmp_path / "bad.json"), "-o", str(tmp_path / "o.wav"), "--model",
                 str(models / "tk"), "--vocoder", str(tmp_path / "no_vocoder")]) == 2
    line = _one_error_line(capsys, "decode")
    assert str(tmp_path / "bad.json") in line
    assert re.search(message, line), line


def test_decode_refuses_codes_of_another_tokenizer(models, tmp_path, capsys):
    doc = _encode(models, tmp_path, capsys)
    assert main(["decode", str(tmp_path / "codes.json"), "-o", str(tmp_path / "o.wav"), "--model",
                 str(models / "tk2"), "--vocoder", str(tmp_path / "no_vocoder")]) == 2
    line = _one_error_line(capsys, "decode")
    assert f"made by tokenizer {doc['tokenizer']}" in line and "encode the audio again" in line


def test_swap_refuses_codes_of_two_tokenizers_and_empty_codes(models, tmp_path, capsys):
    _encode(models, tmp_path, capsys, "a.json", "tk")
    b = _encode(models, tmp_path, capsys, "b.json", "tk2")
    argv = ["swap", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--words", "1", "-o", str(tmp_path / "s.json")]
    assert main(argv) == 2
    assert "different tokenizers" in _one_error_line(capsys, "swap")
    b.update(codes=[])
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(argv) == 2
    line = _one_error_line(capsys, "swap")
    assert str(tmp_path / "b.json") in line and "empty codes" in line
    del b["format"], b["tokenizer"]
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(argv) == 2
    assert "encode the audio again" in _one_error_line(capsys, "swap")


def test_swap_of_one_tokenizers_codes_still_works(models, tmp_path, capsys):
    a = _encode(models, tmp_path, capsys, "a.json")
    _encode(models, tmp_path, capsys, "b.json")
    assert main(["swap", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--words", "1", "-o",
                 str(tmp_path / "s.json")]) == 0
    swapped = json.loads((tmp_path / "s.json").read_text())
    assert swapped["tokenizer"] == a["tokenizer"] and swapped["swap"]["words"] == [1]


@pytest.mark.parametrize("text, where, message", [
    ('{"units": [1, 2]}\n{not json\n', ":2: ", "not valid JSON"),
    ('[1, 2, 3]\n', ":1: ", "expected a JSON object"),
    ('{"audio": "a.wav"}\n', ":1: ", "`units` must be a non-empty list"),
    ('{"units": [1, "x"]}\n', ":1: ", "must be non-negative integers"),
    ('\n', ": ", "no unit streams"),
])
def test_vocode_names_a_malformed_units_file_in_one_line(tmp_path, capsys, text, where, message):
    """The units file is checked after the reference audio and before any model loads."""
    audio = tmp_path / "ref.wav"
    sf.write(audio, _speech(1.5), 16000)
    (tmp_path / "units.jsonl").write_text(text, encoding="utf-8")
    assert main(_argv("vocode", audio, tmp_path)) == 2
    line = _one_error_line(capsys, "vocode")
    assert f"error: {tmp_path / 'units.jsonl'}{where}" in line and message in line, line


def test_a_missing_codes_file_is_one_line(tmp_path, capsys):
    assert main(["decode", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "nope.json: codes file not found" in _one_error_line(capsys, "decode")


# --- codes.json structure (no model needed) -------------------------------------------------------------------------

GOOD = {"format": "taste-codes/2", "tokenizer": "aaaaaaaaaaaaaaaa", "transcript": "the cat", "codes": [[1, 2], [3, 4]],
        "speaker": [0.1] * 4, "unit_rate_hz": 25}


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a codes document"),
    (json.dumps({**GOOD, "codes": [[1, 2], [3]]}), r"same number .* widths \[1, 2\]"),
    (json.dumps({**GOOD, "codes": [[1, 2], [3, 4.5]]}), "codes must be integers"),
    (json.dumps({**GOOD, "codes": [[1, 2], [True, 4]]}), "codes must be integers"),
    (json.dumps({**GOOD, "codes": [[1, 2]]}), "1 code tuples for the 2 words"),
    (json.dumps({**GOOD, "speaker": "abc"}), "speaker embedding must be a non-empty list of numbers"),
    (json.dumps({**GOOD, "transcript": 7}), "transcript must be a string"),
])
def test_read_codes_refuses_malformed_documents(tmp_path, text, message):
    from taste.tokenizer.codes_file import CodesFileError, read_codes

    (tmp_path / "c.json").write_text(text)
    with pytest.raises(CodesFileError, match=message) as err:
        read_codes(tmp_path / "c.json")
    assert str(tmp_path / "c.json") in str(err.value)


def test_read_codes_accepts_both_known_formats(tmp_path):
    from taste.tokenizer.codes_file import read_codes

    old = {k: v for k, v in GOOD.items() if k != "tokenizer"} | {"format": "taste-codes/1"}
    for name, doc in (("v2.json", GOOD), ("v1.json", old)):
        (tmp_path / name).write_text(json.dumps(doc))
        assert read_codes(tmp_path / name) == doc


def test_swap_refuses_a_fingerprinted_and_an_unmarked_document():
    from taste.swap.commands import swap_documents
    from taste.swap.spans import SwapError

    old = {k: v for k, v in GOOD.items() if k != "tokenizer"} | {"format": "taste-codes/1"}
    with pytest.raises(SwapError, match="donor carries no tokenizer fingerprint .*taste-codes/1"):
        swap_documents(GOOD, old, [0])
    assert swap_documents(old, old, [0])["codes"] == GOOD["codes"]
