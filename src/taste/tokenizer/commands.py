"""`taste encode AUDIO TRANSCRIPT -o codes.json` and `taste decode codes.json -o out.wav`.

codes.json carries everything decoding needs: the transcript, one code tuple per word, the speaker embedding, and
what made it: a format version, the unit rate and a fingerprint of the tokenizer (its config and weights). `decode`
and `swap` refuse codes from another tokenizer, out-of-range codes, a wrong-sized speaker embedding or empty codes
with one line naming the file and the problem."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL = "models/taste/tokenizer"
DEFAULT_VOCODER = "models/vocoder"
FORMAT = "taste-codes/2"            # /2 adds the tokenizer fingerprint; /1 files are read with a notice
KNOWN_FORMATS = ("taste-codes/1", FORMAT)


class CodesFileError(ValueError):
    """A codes.json that is missing fields or malformed."""


def encode_file(model_dir: str | Path, audio_path: str | Path, transcript: str,
                speaker: np.ndarray | None = None) -> dict:
    """Audio file + transcript -> codes document (JSON-ready). speaker: [256] (None = resemblyzer on the audio)."""
    from taste.data.features import log_mel
    from taste.data.validate import read_speech
    from taste.data.text_norm import normalise
    from taste.tokenizer.model import TasteTokenizer

    wav = read_speech(audio_path, transcript)  # resampled / downmixed with a notice; bad audio is refused
    model = TasteTokenizer.from_pretrained(model_dir)
    text = normalise(transcript)
    codes = model.encode(log_mel(torch.from_numpy(wav)), text)
    if speaker is None:
        from taste.evaluation.speaker import SpeakerEncoder

        speaker = SpeakerEncoder().embed(wav)
    return {"format": FORMAT, "tokenizer": tokenizer_fingerprint(model_dir), "transcript": text,
            "codes": codes.codes.tolist(), "n_quantizers": int(codes.codes.shape[1]),
            "unit_rate_hz": model.cfg.unit_rate_hz,
            "speaker": [float(x) for x in np.asarray(speaker).ravel()], "audio": str(audio_path)}


def read_codes(path: str | Path) -> dict:
    """Load and check a codes.json."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: codes file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CodesFileError(f"{path}: not valid JSON ({exc})") from exc
    missing = [k for k in ("transcript", "codes", "speaker") if k not in doc]
    if missing:
        raise CodesFileError(f"{path}: missing field(s) {missing}")
    return doc


def tokenizer_fingerprint(model_dir: str | Path) -> str:
    """16 hex digits naming a saved tokenizer: sha256 over the digests of its config and weights files."""
    from taste.data.download import sha256_of
    from taste.tokenizer.model import CONFIG_FILE, WEIGHTS_FILE

    d = Path(model_dir)
    h = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name}: missing (not a saved TasteTokenizer folder)")
        h.update(sha256_of(d / name).encode())
    return h.hexdigest()[:16]


def check_codes(doc: dict, model, model_dir: str | Path, source: str = "codes", notice=None) -> None:
    """Refuse a codes document this tokenizer cannot speak: unknown format, another tokenizer's fingerprint, another
    unit rate, empty codes, a code count that is not one per transcript word, ragged or out-of-range codes, or a
    speaker embedding of the wrong size. A /1 document (no fingerprint) is accepted with a notice."""
    notice = notice or (lambda msg: print(msg, file=sys.stderr))
    fmt = doc.get("format")
    if fmt not in KNOWN_FORMATS:
        raise CodesFileError(f"{source}: unknown format {fmt!r} (this version reads {', '.join(KNOWN_FORMATS)})")
    made_by = doc.get("tokenizer")
    if made_by is None:
        notice(f"notice: {source}: format {fmt} carries no tokenizer fingerprint; cannot check it was made by "
               f"{model_dir}")
    else:
        ours = tokenizer_fingerprint(model_dir)
        if made_by != ours:
            raise CodesFileError(f"{source}: made by tokenizer {made_by}, but {model_dir} is {ours}; encode the "
                                 f"audio again with this model (codes of another tokenizer decode to garbage)")
    rate = doc.get("unit_rate_hz")
    if rate is not None and float(rate) != float(model.cfg.unit_rate_hz):
        raise CodesFileError(f"{source}: codes at {rate} Hz units, but {model_dir} speaks "
                             f"{model.cfg.unit_rate_hz} Hz units")
    codes, words = doc["codes"], doc["transcript"].split()
    if not codes or not words:
        raise CodesFileError(f"{source}: empty codes or transcript ({len(codes)} code tuples, {len(words)} words)")
    if len(codes) != len(words):
        raise CodesFileError(f"{source}: {len(codes)} code tuples for the {len(words)} words of the transcript")
    widths = {len(c) if isinstance(c, list) else -1 for c in codes}
    n_q, size = model.cfg.rvq.n_quantizers, model.cfg.rvq.codebook_size
    if len(widths) != 1 or not 1 <= next(iter(widths)) <= n_q:
        raise CodesFileError(f"{source}: every word needs 1..{n_q} codes (one per RVQ level); got widths "
                             f"{sorted(widths)}")
    flat = [x for c in codes for x in c]
    if not all(isinstance(x, int) and 0 <= x < size for x in flat):
        raise CodesFileError(f"{source}: codes must be integers in [0, {size}) for this tokenizer")
    dim = model.cfg.decoder.speaker_dim
    if not isinstance(doc["speaker"], list) or len(doc["speaker"]) != dim:
        got = len(doc["speaker"]) if isinstance(doc["speaker"], list) else type(doc["speaker"]).__name__
        raise CodesFileError(f"{source}: speaker embedding of size {got}; this tokenizer needs {dim}")


def decode_doc(doc: dict, model_dir: str | Path, vocoder_dir: str | Path, seed: int = 0, source: str = "codes"
               ) -> tuple[np.ndarray, dict]:
    """codes document -> (waveform float32 [T] at 16 kHz, info with units and per-word durations)."""
    from taste.tokenizer.model import TasteTokenizer
    from taste.vocoder import UnitVocoder

    model = TasteTokenizer.from_pretrained(model_dir)
    check_codes(doc, model, model_dir, source)
    codes = torch.tensor(doc["codes"], dtype=torch.long).reshape(len(doc["codes"]), -1)
    speaker = torch.tensor(doc["speaker"], dtype=torch.float32)
    result = model.decode(doc["transcript"], codes, speaker, seed=seed)
    wav = UnitVocoder.from_pretrained(vocoder_dir).synthesise(result.units, speaker)
    return wav, {"units": result.units.tolist(), "word_durations_s": result.word_durations_s}


def _cmd_encode(args: argparse.Namespace) -> int:
    speaker = np.load(args.speaker_embedding) if args.speaker_embedding else None
    doc = encode_file(args.model, args.audio, args.transcript, speaker)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc), encoding="utf-8")
    print(f"{args.output}: {len(doc['codes'])} words x {doc['n_quantizers']} codes")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from taste.data.audio_io import write_audio

    wav, info = decode_doc(read_codes(args.codes), args.model, args.vocoder, seed=args.seed, source=args.codes)
    write_audio(args.output, wav, 16000)
    durs = " ".join(f"{d:.2f}" for d in info["word_durations_s"])
    print(f"{args.output}: {len(wav) / 16000:.2f} s, {len(info['units'])} units; word durations (s): {durs}")
    return 0


def register(subparsers) -> None:
    """Add `encode` and `decode` to taste's CLI."""
    enc = subparsers.add_parser("encode", help="audio + transcript -> TASTE codes (one tuple per word) as JSON")
    enc.add_argument("audio")
    enc.add_argument("transcript")
    enc.add_argument("-o", "--output", required=True)
    enc.add_argument("--model", default=DEFAULT_MODEL, help="saved TasteTokenizer folder")
    enc.add_argument("--speaker-embedding", default=None, help=".npy speaker embedding (default: resemblyzer on AUDIO)")
    enc.set_defaults(func=_cmd_encode)
    dec = subparsers.add_parser("decode", help="codes.json -> units -> waveform")
    dec.add_argument("codes")
    dec.add_argument("-o", "--output", required=True)
    dec.add_argument("--model", default=DEFAULT_MODEL)
    dec.add_argument("--vocoder", default=DEFAULT_VOCODER)
    dec.add_argument("--seed", type=int, default=0)
    dec.set_defaults(func=_cmd_decode)
