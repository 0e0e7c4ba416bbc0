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
    sf.write(path, _speech(0.3, 16000), 16000)
    with pytest.raises(TranscriptValidationError, match="implausible transcript length"):
        read_speech(path, "one two three four five six seven eight nine ten")
    with pytest.raises(TranscriptValidationError, match="empty transcript"):
        read_speech(path, "  ")
    assert len(read_speech(path, "hi", cfg=ValidationConfig())) == 4800
    long = tmp_path / "long.wav"  # 11 s for one word: implausibly few characters per second
    sf.write(long, _speech(11.0, 16000), 16000)
    with pytest.raises(TranscriptValidationError, match=r"implausible transcript length \(2 characters"):
        read_speech(long, "hi")


def test_commands_need_the_models_minimum_length_but_prepare_keeps_its_own(tmp_path):
    """0.2 s passes prepare's 0.1 s floor but not the commands' 0.25 s (the units model's minimum)."""
    from taste.data.validate import COMMAND_MIN_SECONDS, load_checked

    path = tmp_path / "short.wav"
    sf.write(path, _speech(0.2, 16000), 16000)
    with pytest.raises(AudioValidationError, match=f"too short \\(0.200 s, at least {COMMAND_MIN_SECONDS} s"):
        read_speech(path)
    assert len(load_checked(path, ValidationConfig())[0]) == 3200
    assert len(read_speech(path, min_seconds=0.1)) == 3200


def test_silence_threshold_is_conservative(tmp_path):
    """Digital silence and dither-level noise are refused; speech peaking at -50 dBFS and room tone pass."""
    rng = np.random.default_rng(0)
    for name, wav, ok in [("zeros", np.zeros(16000), False),
                          ("dither", rng.normal(0, 3e-5, 16000), False),       # 16-bit TPDF-dither level
                          ("quiet_speech", _speech(1.0, 16000) / 0.3 * 10 ** (-50 / 20), True),
                          ("room_tone", rng.normal(0, 10 ** (-65 / 20), 16000), True)]:
        path = tmp_path / f"{name}.flac"
        sf.write(path, wav.astype(np.float32), 16000, subtype="PCM_24")
        if ok:
            assert len(read_speech(path)) == 16000
        else:
            with pytest.raises(AudioValidationError, match="silence"):
                read_speech(path)


def test_clipping_is_judged_before_resampling(tmp_path):
    """A clipped 44.1 kHz file stays refused although resampling smears its plateaus below full scale."""
    path = tmp_path / "loud.wav"
    t = np.arange(44100) / 44100
    sf.write(path, np.clip(3 * np.sin(2 * np.pi * 200 * t), -1, 1).astype(np.float32), 44100, subtype="FLOAT")
    with pytest.raises(AudioValidationError, match="clipped"):
        read_speech(path)


def test_an_eleven_second_24_bit_stereo_flac_is_read(tmp_path):
    """The issue's recording: 11 s, 44.1 kHz, stereo, 24-bit FLAC -> 16 kHz mono with two notices on stderr."""
    path = tmp_path / "real.flac"
    sf.write(path, _speech(11.0, 44100, channels=2), 44100, subtype="PCM_24")
    notices = []
    wav = read_speech(path, "a sentence of about the right length for eleven seconds of speech", notice=notices.append)
    assert len(wav) == 11 * 16000 and len(notices) == 2 and all(n.startswith(str(path)) for n in notices)


def test_cli_turns_a_refusal_into_one_line_and_exit_status_2(tmp_path, capsys):
    from taste.cli import main

    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    assert main(["encode", str(path), "hello there", "-o", str(tmp_path / "codes.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taste encode: error:") and "silence" in err[0]
    with pytest.raises(AudioValidationError):
        main(["--debug", "encode", str(path), "hello there", "-o", str(tmp_path / "codes.json")])
