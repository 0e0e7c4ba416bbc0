"""codes.json, the TASTE tokenizer's exchange format: reading it, naming the tokenizer that made it, and refusing a
document a tokenizer cannot speak (used by `taste decode`, `taste swap` and the swap stage).

A document carries the transcript, one code tuple per word, the speaker embedding, the format version, the unit rate
and a fingerprint of the tokenizer (its config and weights)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

FORMAT = "taste-codes/2"            # /2 adds the tokenizer fingerprint; /1 files are read with a notice, files
                                    # with no format are refused (encode again)
KNOWN_FORMATS = ("taste-codes/1", FORMAT)


class CodesFileError(ValueError):
    """A codes.json that is missing fields or malformed."""


def read_codes(path: str | Path) -> dict:
    """Load a codes.json and check what needs no model (check_structure). Raises FileNotFoundError / CodesFileError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: codes file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CodesFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise CodesFileError(f"{path}: not a codes document (a JSON {type(doc).__name__}, not an object)")
    check_structure(doc, str(path))
    return doc


def check_structure(doc: dict, source: str = "codes") -> None:
    """Refuse what no tokenizer can speak: missing fields, an unknown format (or none: a file from before the format
    was versioned), empty codes or transcript, a code count that is not one per word, ragged or non-integer codes,
    a speaker embedding that is not a list of numbers."""
    missing = [k for k in ("transcript", "codes", "speaker") if k not in doc]
    if missing:
        raise CodesFileError(f"{source}: missing field(s) {missing}")
    fmt = doc.get("format")
    if fmt is None:
        raise CodesFileError(f"{source}: no format version (written by an older `taste encode`); encode the audio "
                             f"again with `taste encode`")
    if fmt not in KNOWN_FORMATS:
        raise CodesFileError(f"{source}: unknown format {fmt!r} (this version reads {', '.join(KNOWN_FORMATS)})")
    codes, text = doc["codes"], doc["transcript"]
    if not isinstance(text, str) or not isinstance(codes, list):
        raise CodesFileError(f"{source}: transcript must be a string and codes a list")
    words = text.split()
    if not codes or not words:
        raise CodesFileError(f"{source}: empty codes or transcript ({len(codes)} code tuples, {len(words)} words)")
    if len(codes) != len(words):
        raise CodesFileError(f"{source}: {len(codes)} code tuples for the {len(words)} words of the transcript")
    widths = {len(c) if isinstance(c, list) else -1 for c in codes}
    if len(widths) != 1 or next(iter(widths)) < 1:
        raise CodesFileError(f"{source}: every word needs the same number (>= 1) of codes; got widths "
                             f"{sorted(widths)}")
    if not all(isinstance(x, int) and not isinstance(x, bool) for c in codes for x in c):
        raise CodesFileError(f"{source}: codes must be integers")
    spk = doc["speaker"]
    if not isinstance(spk, list) or not spk or not all(isinstance(x, (int, float)) for x in spk):
        raise CodesFileError(f"{source}: the speaker embedding must be a non-empty list of numbers")


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
    """Refuse a codes document this tokenizer cannot speak: check_structure's problems, another tokenizer's
    fingerprint, another unit rate, more codes per word than RVQ levels, out-of-range codes, or a speaker embedding
    of the wrong size. A taste-codes/1 document (no fingerprint) is accepted with a notice; one with no format at all
    (older still) is refused with a request to encode the audio again."""
    notice = notice or (lambda msg: print(msg, file=sys.stderr))
    check_structure(doc, source)
    fmt = doc["format"]
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
    codes = doc["codes"]
    width, n_q, size = len(codes[0]), model.cfg.rvq.n_quantizers, model.cfg.rvq.codebook_size
    if width > n_q:
        raise CodesFileError(f"{source}: every word needs 1..{n_q} codes (one per RVQ level); got widths "
                             f"[{width}]")
    flat = [x for c in codes for x in c]
    if not all(isinstance(x, int) and 0 <= x < size for x in flat):
        raise CodesFileError(f"{source}: codes must be integers in [0, {size}) for this tokenizer")
    dim = model.cfg.decoder.speaker_dim
    if not isinstance(doc["speaker"], list) or len(doc["speaker"]) != dim:
        got = len(doc["speaker"]) if isinstance(doc["speaker"], list) else type(doc["speaker"]).__name__
        raise CodesFileError(f"{source}: speaker embedding of size {got}; this tokenizer needs {dim}")
