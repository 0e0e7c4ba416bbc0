"""The one input contract of every command that takes audio (data.validate.read_speech) and the CLI's error line."""
import numpy as np
import pytest
import soundfile as sf

from taste.data.validate import (AudioValidationError, TranscriptValidationError, ValidationConfig, read_speech)


def _speech(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


def test_any_rate_and_channel_count_is_converted_with_a_notice(tmp_path):
    path = tmp_path / "real.flac"
    sf.write(path, _speech(2.0, 44100, channels=2), 44100, subtype="PCM_24")
    notices = []
    wav = read_speech(path, "a short sentence", notice=notices.append)
    assert wav.ndim == 1 and len(wav) == 32000 and wav.dtype == np.float32
    assert notices == [f"{path}: downmixed 2 channels to mono", f"{path}: resampled from 44100 Hz to 16000 Hz"]


@pytest.mark.parametrize("make,problem", [
    (lambda: np.full(16000, np.nan), "NaN or infinite"),
    (lambda: np.zeros(16000), "silence"),
    (lambda: np.random.default_rng(0).normal(0, 1e-4, 16000), "silence"),
    (lambda: np.sign(_speech(1.0, 16000)) * 1.0, "clipped"),
    (lambda: _speech(0.05, 16000), "too short"),
])
def test_bad_audio_is_refused_naming_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    sf.write(path, make().astype(np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioValidationError, match=problem) as err:
        read_speech(path)
    assert str(path) in str(err.value)


def test_truncated_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _speech(1.0, 16000), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(AudioValidationError, match="truncated WAV"):
        read_speech(path)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_speech(tmp_path / "nope.wav")


def test_a_transcript_implausible_for_the_audio_length_is_refused(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _speech(0.2, 16000), 16000)
    with pytest.raises(TranscriptValidationError, match="implausible transcript length"):
        read_speech(path, "one two three four five six seven eight nine ten")
    with pytest.raises(TranscriptValidationError, match="empty transcript"):
        read_speech(path, "  ")
    assert len(read_speech(path, "hi", cfg=ValidationConfig())) == 3200


def test_cli_turns_a_refusal_into_one_line_and_exit_status_2(tmp_path, capsys):
    from taste.cli import main

    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    assert main(["encode", str(path), "hello there", "-o", str(tmp_path / "codes.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taste encode: error:") and "silence" in err[0]
    with pytest.raises(AudioValidationError):
        main(["--debug", "encode", str(path), "hello there", "-o", str(tmp_path / "codes.json")])
