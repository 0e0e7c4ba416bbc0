"""`taste encode AUDIO TRANSCRIPT -o codes.json` and `taste decode codes.json -o out.wav`.

codes.json carries everything decoding needs: the transcript, one code tuple per word, the speaker embedding, and
what made it: a format version, the unit rate and a fingerprint of the tokenizer (its config and weights). `decode`
and `swap` refuse codes from another tokenizer, out-of-range codes, a wrong-sized speaker embedding or empty codes
with one line naming the file and the problem."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from taste.tokenizer.codes_file import (FORMAT, KNOWN_FORMATS, CodesFileError, check_codes, read_codes,  # noqa: F401
                                        tokenizer_fingerprint)

DEFAULT_MODEL = "models/taste/tokenizer"
DEFAULT_VOCODER = "models/vocoder"


def encode_file(model_dir: str | Path, audio_path: str | Path, transcript: str,
                speaker: np.ndarray | None = None, speaker_source: str = "speaker embedding",
                speaker_embed: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Audio file + transcript -> codes document (JSON-ready). speaker: [speaker_dim]; None = `speaker_embed` of the
    audio (the models' conditioning embedder, `taste.data.speaker_embed.conditioning_encoder(params).embed`). The audio is read by data.validate.read_speech (any format; bad audio or an implausible transcript is
    refused); a speaker embedding of the wrong size or with non-finite values is refused naming `speaker_source`."""
    from taste.data.features import log_mel
    from taste.data.validate import read_speech
    from taste.data.text_norm import normalise
    from taste.tokenizer.model import TasteTokenizer, TokenizerInputError

    wav = read_speech(audio_path, transcript)  # resampled / downmixed with a notice; bad audio is refused
    model = TasteTokenizer.from_pretrained(model_dir)
    text = normalise(transcript)
    dim = model.cfg.decoder.speaker_dim
    if speaker is not None:
        speaker = np.asarray(speaker, dtype=np.float64).ravel()
        if speaker.size != dim or not np.isfinite(speaker).all():
            raise CodesFileError(f"{speaker_source}: speaker embedding of {speaker.size} values"
                                 f"{'' if np.isfinite(speaker).all() else ' (some not finite)'}; {model_dir} needs "
                                 f"{dim} finite values")
    try:
        codes = model.encode(log_mel(torch.from_numpy(wav)), text)
    except TokenizerInputError as exc:  # e.g. longer than the speech encoder's window: name the file
        raise TokenizerInputError(f"{audio_path}: {exc}") from exc
    if speaker is None:
        if speaker_embed is None:
            raise TypeError("encode_file: give a speaker embedding or a speaker_embed function")
        speaker = speaker_embed(wav)
    return {"format": FORMAT, "tokenizer": tokenizer_fingerprint(model_dir), "transcript": text,
            "codes": codes.codes.tolist(), "n_quantizers": int(codes.codes.shape[1]),
            "unit_rate_hz": model.cfg.unit_rate_hz,
            "speaker": [float(x) for x in np.asarray(speaker).ravel()], "audio": str(audio_path)}


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


class SpeakerEmbeddingFileError(CodesFileError):
    """A --speaker-embedding file that is not a .npy array of numbers."""


def load_speaker_embedding(path: str | Path) -> np.ndarray:
    """A speaker embedding from a .npy file -> float64 [D]. A missing file -> FileNotFoundError; a file numpy
    cannot read as one numeric array (truncated, not .npy, a pickle, an .npz archive, text) ->
    SpeakerEmbeddingFileError; both name the file. Its size is checked against the tokenizer by encode_file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: speaker embedding file not found")
    with path.open("rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK\x03\x04"):  # numpy would call anything else a pickle
        raise SpeakerEmbeddingFileError(f"{path}: not a .npy file ({'empty' if not magic else 'no NumPy header'}); "
                                        f"save the embedding with numpy.save")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError, UnpicklingError... none naming the file
        raise SpeakerEmbeddingFileError(f"{path}: not a readable .npy speaker embedding "
                                        f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, np.ndarray):  # an .npz archive
        names = ", ".join(loaded.files)
        loaded.close()
        raise SpeakerEmbeddingFileError(f"{path}: an .npz archive ({names}), not one .npy array; save the embedding "
                                        f"with numpy.save")
    if not (np.issubdtype(loaded.dtype, np.floating) or np.issubdtype(loaded.dtype, np.integer)):
        raise SpeakerEmbeddingFileError(f"{path}: a .npy array of {loaded.dtype}, not numbers")
    return loaded.astype(np.float64).ravel()


def _cmd_encode(args: argparse.Namespace) -> int:
    speaker = load_speaker_embedding(args.speaker_embedding) if args.speaker_embedding else None
    speaker_embed = None
    if speaker is None:  # the conditioning embedder at params' settings, as the prepare stage embedded training speech
        from taste.config import load_params
        from taste.data.speaker_embed import conditioning_encoder

        speaker_embed = conditioning_encoder(load_params(args.params)).embed
    doc = encode_file(args.model, args.audio, args.transcript, speaker, speaker_source=str(args.speaker_embedding),
                      speaker_embed=speaker_embed)
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
    enc.add_argument("audio", help="audio file (any format, sample rate and channel count)")
    enc.add_argument("transcript", help="what is said in AUDIO")
    enc.add_argument("-o", "--output", required=True)
    enc.add_argument("--model", default=DEFAULT_MODEL, help="saved TasteTokenizer folder")
    enc.add_argument("--speaker-embedding", default=None,
                     help=".npy speaker embedding (default: AUDIO's, embedded as the prepare stage embeds training "
                          "speech, at prepare.speaker_partials_per_second of --params)")
    enc.set_defaults(func=_cmd_encode)
    dec = subparsers.add_parser("decode", help="codes.json -> units -> waveform")
    dec.add_argument("codes")
    dec.add_argument("-o", "--output", required=True)
    dec.add_argument("--model", default=DEFAULT_MODEL)
    dec.add_argument("--vocoder", default=DEFAULT_VOCODER)
    dec.add_argument("--seed", type=int, default=0)
    dec.set_defaults(func=_cmd_decode)
