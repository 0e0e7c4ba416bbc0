"""Validation of every utterance before it enters the study: each problem is rejected (or repaired where that is
safe: resample, downmix, re-normalise an unaligned transcript) with a message naming the file and the problem."""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio_io import resample
from .records import Utterance
from .text_norm import normalise


class AudioValidationError(ValueError):
    """Audio that cannot enter the study (unreadable, empty, truncated, NaN, clipped...)."""


class TranscriptValidationError(ValueError):
    """A transcript that cannot enter the study (empty, implausible length, not UTF-8, misaligned)."""


class TooManyRejectionsError(ValueError):
    """More utterances were rejected than prepare.max_rejection_share allows."""


@dataclass(frozen=True)
class Rejection:
    id: str
    file: str
    problem: str


@dataclass(frozen=True)
class Repair:
    id: str
    file: str
    repair: str


@dataclass(frozen=True)
class ValidationConfig:
    sample_rate: int = 16000
    chars_per_second: tuple[float, float] = (2.0, 40.0)
    clip_share: float = 0.01        # share of samples at full scale above which audio counts as clipped
    clip_level: float = 0.999
    min_seconds: float = 0.1
    # Silence: loudest sample below -60 dBFS or RMS below -80 dBFS (the units model's own silence floor, see
    # taste.units.extract.check_audio). Conservative on purpose: 1e-3 is ~33 steps of 16-bit PCM, far below any
    # usable speech, and the quietest utterance of the synthetic corpus peaks at -9.7 dBFS with an RMS of -27 dBFS
    # (3,346 files of data/raw), 50 dB above either bound; a real recording's room tone (-70..-50 dBFS) also passes.
    silence_peak: float = 1e-3
    silence_rms: float = 1e-4
    duration_tolerance: float = 0.05  # seconds between the manifest's duration and the file's


# The shortest audio the commands accept: the units model refuses less than 0.25 s (taste.units.extract.check_audio),
# and the tokenizer's speaker encoder and word pooling have nothing to work with below it either.
COMMAND_MIN_SECONDS = 0.25


def check_wav_header(path: Path) -> None:
    """Raise AudioValidationError when a RIFF/WAVE file declares more data than it holds (a truncated file)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not a WAV file: soundfile decides
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise AudioValidationError(f"{path}: truncated WAV (no data chunk in {size} bytes)")
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if f.tell() + csize > size:
                    raise AudioValidationError(
                        f"{path}: truncated WAV (data chunk declares {csize} bytes, file holds {size - f.tell()})")
                return
            f.seek(csize + (csize & 1), 1)


def _dbfs(x: float) -> str:
    return f"{20 * np.log10(x):.0f} dBFS" if x > 0 else "-inf dBFS"


def load_checked(path: Path, cfg: ValidationConfig) -> tuple[np.ndarray, list[str]]:
    """Read audio and check it -> (float32 mono [T] at cfg.sample_rate, repairs made). Raises on any problem."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file is missing")
    if path.stat().st_size == 0:
        raise AudioValidationError(f"{path}: zero-length file")
    check_wav_header(path)
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors for corrupt or unknown formats
        raise AudioValidationError(f"{path}: unreadable or corrupt audio ({e})") from e
    if wav.shape[0] == 0:
        raise AudioValidationError(f"{path}: zero-length audio (no samples)")
    if not np.isfinite(wav).all():
        raise AudioValidationError(f"{path}: {int((~np.isfinite(wav)).sum())} NaN or infinite samples")
    # on the file's own samples: resampling smears a clipped plateau below full scale
    clipped = float(np.mean(np.abs(wav) >= cfg.clip_level))
    if clipped > cfg.clip_share:
        raise AudioValidationError(f"{path}: clipped ({clipped:.1%} of samples at full scale)")
    repairs = []
    if wav.shape[1] > 1:
        repairs.append(f"downmixed {wav.shape[1]} channels to mono")
        wav = wav.mean(axis=1, keepdims=True)
    wav = wav[:, 0]
    if sr != cfg.sample_rate:
        wav = resample(wav, sr, cfg.sample_rate)
        repairs.append(f"resampled from {sr} Hz to {cfg.sample_rate} Hz")
    if len(wav) < cfg.min_seconds * cfg.sample_rate:
        raise AudioValidationError(f"{path}: too short ({len(wav) / cfg.sample_rate:.3f} s, at least "
                                   f"{cfg.min_seconds} s)")
    peak, rms = float(np.abs(wav).max()), float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if peak == 0:
        raise AudioValidationError(f"{path}: silence (every sample is zero)")
    if peak < cfg.silence_peak or rms < cfg.silence_rms:
        raise AudioValidationError(f"{path}: silence (loudest sample {_dbfs(peak)}, RMS {_dbfs(rms)}; speech needs a "
                                   f"peak of at least {_dbfs(cfg.silence_peak)} and an RMS of at least "
                                   f"{_dbfs(cfg.silence_rms)})")
    return wav.astype(np.float32), repairs


def check_text_rate(path: str | Path, text: str, seconds: float, cfg: ValidationConfig) -> None:
    """Raise TranscriptValidationError when `text` is empty or implausibly long or short for `seconds` of audio."""
    text = normalise(text)
    if not text:
        raise TranscriptValidationError(f"{path}: empty transcript")
    cps, (lo, hi) = len(text) / seconds, cfg.chars_per_second
    if not lo <= cps <= hi:
        raise TranscriptValidationError(
            f"{path}: implausible transcript length ({len(text)} characters for {seconds:.2f} s = {cps:.1f} chars/s, "
            f"expected {lo}-{hi})")


def read_speech(path: str | Path, transcript: str | None = None, cfg: ValidationConfig = ValidationConfig(),
                notice=None, min_seconds: float = COMMAND_MIN_SECONDS) -> np.ndarray:
    """The one way every command reads its audio -> float32 mono [T] at cfg.sample_rate.

    Any format soundfile reads (WAV, FLAC, OGG, MP3, AIFF...), at any sample rate and channel count: resampled /
    downmixed, with a one-line notice `<path>: resampled from ... Hz to ... Hz` through `notice` (default: print to
    stderr). Refused, each with a message naming the file and the problem: a missing file (FileNotFoundError); an
    empty, truncated, undecodable file, NaN or infinite samples, clipping, silence, or audio shorter than
    max(cfg.min_seconds, min_seconds) (AudioValidationError: the prepare stage's checks, load_checked); and, when a
    transcript is given, an empty one or one implausible for the audio's length, chars per second outside
    cfg.chars_per_second (TranscriptValidationError)."""
    import sys

    path = Path(path)
    cfg = replace(cfg, min_seconds=max(cfg.min_seconds, min_seconds))
    wav, repairs = load_checked(path, cfg)
    for repair in repairs:
        (notice or (lambda m: print(m, file=sys.stderr)))(f"{path}: {repair}")
    if transcript is not None:
        check_text_rate(path, transcript, len(wav) / cfg.sample_rate, cfg)
    return wav


def check_transcript(utt: Utterance, duration: float, cfg: ValidationConfig) -> tuple[Utterance, list[str]]:
    """Check the transcript against the audio -> (utterance, repairs). Raises TranscriptValidationError."""
    repairs = []
    if not utt.text or not utt.text.strip():
        raise TranscriptValidationError(f"{utt.audio_path}: empty transcript")
    if normalise(utt.text) != utt.text:
        if utt.words:
            raise TranscriptValidationError(f"{utt.audio_path}: transcript is not normalised but carries alignments")
        utt = replace(utt, text=normalise(utt.text))
        repairs.append("normalised the transcript")
        if not utt.text:
            raise TranscriptValidationError(f"{utt.audio_path}: transcript has no words after normalisation")
    check_text_rate(utt.audio_path, utt.text, duration, cfg)
    if utt.words and utt.words[-1].end > duration + cfg.duration_tolerance:
        raise TranscriptValidationError(f"{utt.audio_path}: word alignment ends at {utt.words[-1].end:.2f} s, "
                                        f"after the audio ({duration:.2f} s)")
    return utt, repairs


def validate_utterance(utt: Utterance, audio_path: Path, cfg: ValidationConfig):
    """-> (wav, checked utterance, repairs) or raises one of the validation errors / FileNotFoundError."""
    wav, repairs = load_checked(audio_path, cfg)
    duration = len(wav) / cfg.sample_rate
    if utt.duration and abs(duration - utt.duration) > cfg.duration_tolerance and not repairs:
        raise AudioValidationError(f"{audio_path}: audio lasts {duration:.3f} s, the manifest says "
                                   f"{utt.duration:.3f} s (truncated or replaced file)")
    utt, text_repairs = check_transcript(utt, duration, cfg)
    return wav, replace(utt, duration=round(duration, 5), sample_rate=cfg.sample_rate), repairs + text_repairs


_ID = re.compile(rb'"id"\s*:\s*"([^"]*)"')
_PATH = re.compile(rb'"audio_path"\s*:\s*"([^"]*)"')


def read_manifest_lenient(path: Path) -> tuple[list[Utterance], list[Rejection]]:
    """Read a manifest line by line; a line that is not UTF-8 or not a valid record becomes a Rejection."""
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    utts, rejections = [], []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        m_id, m_path = _ID.search(raw), _PATH.search(raw)
        uid = m_id.group(1).decode("ascii", "replace") if m_id else f"{path.name}:{lineno}"
        file = m_path.group(1).decode("utf-8", "replace") if m_path else str(path)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            rejections.append(Rejection(uid, file, f"text is not valid UTF-8 ({e.reason} at byte {e.start}, "
                                                   f"{path} line {lineno})"))
            continue
        try:
            utts.append(Utterance.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as e:
            rejections.append(Rejection(uid, file, f"bad manifest record ({e}; {path} line {lineno})"))
    return utts, rejections
