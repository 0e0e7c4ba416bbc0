"""`taste swap RECIPIENT.json DONOR.json --words 2,3 -o swapped.json [--wav swapped.wav]`: one token swap on files.

The inputs are codes documents from `taste encode` (transcript, one code tuple per word, speaker embedding).
The output is a codes document with the recipient's transcript and speaker and the donor's codes at the chosen
words; with --wav it is also decoded and spoken, and the per-word durations of recipient, donor and swap printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from taste.swap.spans import SPAN_RULES, SwapError, span_indices, swap_codes

DEFAULT_MODEL = "models/taste/tokenizer"
DEFAULT_VOCODER = "models/vocoder"


def swap_documents(recipient: dict, donor: dict, words: list[int]) -> dict:
    """Codes documents -> the swapped document (recipient's transcript and speaker). Raises SwapError on mismatch."""
    unmarked = [(name, d) for name, d in (("recipient", recipient), ("donor", donor)) if d.get("tokenizer") is None]
    if len(unmarked) == 1:
        name, d = unmarked[0]
        raise SwapError(f"the {name} carries no tokenizer fingerprint (format {d.get('format')}) and the other does; "
                        f"encode both with the same tokenizer")
    if recipient.get("tokenizer") != donor.get("tokenizer"):
        raise SwapError(f"recipient and donor were encoded by different tokenizers ({recipient.get('tokenizer')} vs "
                        f"{donor.get('tokenizer')}); their codes do not mean the same")
    if recipient["transcript"].split() != donor["transcript"].split():
        raise SwapError("recipient and donor transcripts differ; a token swap needs two renditions of one sentence")
    rec = torch.tensor(recipient["codes"], dtype=torch.long).reshape(len(recipient["codes"]), -1)
    don = torch.tensor(donor["codes"], dtype=torch.long).reshape(len(donor["codes"]), -1)
    out = dict(recipient)
    out["codes"] = swap_codes(rec, don, words).tolist()
    out["swap"] = {"words": sorted(set(words)), "donor_audio": donor.get("audio")}
    return out


def parse_words(text: str | None, span: str | None, n_words: int, seed: int) -> list[int]:
    """--words '1,3' or --span RULE -> word indices."""
    if (text is None) == (span is None):
        raise SwapError("give exactly one of --words and --span")
    if span is not None:
        return span_indices(n_words, span, seed)
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise SwapError(f"--words must be comma-separated word indices, got {text!r}") from exc


def _speak(docs: dict[str, dict], model_dir: str, vocoder_dir: str, seed: int) -> dict[str, tuple]:
    """Decode each codes document with one loaded model -> name -> (wav, per-word durations)."""
    from taste.tokenizer.model import TasteTokenizer
    from taste.vocoder import UnitVocoder

    from taste.tokenizer.codes_file import check_codes

    model, vocoder = TasteTokenizer.from_pretrained(model_dir), UnitVocoder.from_pretrained(vocoder_dir)
    for name, doc in docs.items():
        check_codes(doc, model, model_dir, name)
    speaker = torch.tensor(docs["swapped"]["speaker"], dtype=torch.float32)  # everything in the recipient's voice
    out = {}
    for name, doc in docs.items():
        codes = torch.tensor(doc["codes"], dtype=torch.long).reshape(len(doc["codes"]), -1)
        result = model.decode(doc["transcript"], codes, speaker, seed=seed)
        out[name] = (vocoder.synthesise(result.units, speaker), result.word_durations_s)
    return out


def _cmd_swap(args: argparse.Namespace) -> int:
    from taste.tokenizer.codes_file import read_codes

    recipient, donor = read_codes(args.recipient), read_codes(args.donor)
    words = parse_words(args.words, args.span, len(recipient["codes"]), args.seed)
    swapped = swap_documents(recipient, donor, words)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(swapped), encoding="utf-8")
    print(f"{args.output}: words {swapped['swap']['words']} of {len(swapped['codes'])} take the donor's codes")
    if args.wav:
        from taste.data.audio_io import write_audio

        spoken = _speak({"recipient": recipient, "donor": donor, "swapped": swapped}, args.model, args.vocoder,
                        args.decode_seed)
        write_audio(args.wav, spoken["swapped"][0], 16000)
        print(f"{args.wav}: {len(spoken['swapped'][0]) / 16000:.2f} s")
        print("word".ljust(14) + "".join(n.rjust(11) for n in spoken))
        for i, word in enumerate(recipient["transcript"].split()):
            mark = "*" if i in words else " "
            print(f"{mark}{word[:12]:<13}" + "".join(f"{spoken[n][1][i]:11.2f}" for n in spoken))
    return 0


def register(subparsers) -> None:
    """Add `swap` to taste's CLI."""
    p = subparsers.add_parser("swap", help="swap the TASTE codes of chosen words from a donor into a recipient")
    p.add_argument("recipient", help="codes.json of the recipient (from `taste encode`)")
    p.add_argument("donor", help="codes.json of the donor: same sentence, spoken differently")
    p.add_argument("--words", default=None, help="comma-separated word indices (0-based) to swap")
    p.add_argument("--span", default=None, choices=SPAN_RULES, help="or a span rule instead of --words")
    p.add_argument("--seed", type=int, default=0, help="seed of the span rule 'single'")
    p.add_argument("-o", "--output", required=True, help="swapped codes.json")
    p.add_argument("--wav", default=None, help="also decode and speak the swap into this WAV")
    p.add_argument("--model", default=DEFAULT_MODEL, help="saved TasteTokenizer folder")
    p.add_argument("--vocoder", default=DEFAULT_VOCODER)
    p.add_argument("--decode-seed", type=int, default=0)
    p.set_defaults(func=_cmd_swap)
