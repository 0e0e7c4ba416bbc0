"""Real corpora into the same manifest as the synthetic one (no alignments): LibriSpeech, LibriTTS, a plain folder.

Loaders never drop an utterance silently: a transcript they cannot read becomes a Rejection, written next to the
manifest (load_rejections.json) and counted by the prepare stage.
"""
from __future__ import annotations

import json
import random
import zlib
from dataclasses import asdict, replace
from pathlib import Path

import soundfile as sf

from .records import Utterance, write_manifest
from .text_norm import normalise
from .validate import Rejection

AUDIO_SUFFIXES = (".wav", ".flac")


def _decode(path: Path) -> str:
    """Transcript bytes -> str; raises UnicodeDecodeError for text that is not UTF-8."""
    return path.read_bytes().decode("utf-8")


def _utterance(uid: str, audio: Path, text: str, speaker: str) -> Utterance:
    try:
        info = sf.info(str(audio))
        duration, sr = round(info.frames / info.samplerate, 5), int(info.samplerate)
    except Exception:  # unreadable audio: prepare rejects it with the decoder's message
        duration, sr = 0.0, 0
    return Utterance(id=uid, audio_path=audio.as_posix(), duration=duration, sample_rate=sr, text=normalise(text),
                     speaker=speaker, split="", rate_wpm=None, pitch=None)


def load_librispeech(root: Path) -> tuple[list[Utterance], list[Rejection]]:
    """root/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt ("ID TEXT" lines) beside ID.flac."""
    utts, rejections = [], []
    for trans in sorted(Path(root).glob("*/*/*.trans.txt")):
        try:
            lines = _decode(trans).splitlines()
        except UnicodeDecodeError as e:
            rejections.append(Rejection(trans.name, trans.as_posix(), f"transcript is not valid UTF-8 ({e.reason})"))
            continue
        for line in lines:
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            audio = next((trans.parent / f"{uid}{s}" for s in AUDIO_SUFFIXES if (trans.parent / f"{uid}{s}").exists()),
                         trans.parent / f"{uid}.flac")
            utts.append(_utterance(uid, audio, text, uid.split("-")[0]))
    return utts, rejections


def load_libritts(root: Path) -> tuple[list[Utterance], list[Rejection]]:
    """root/<speaker>/<chapter>/<id>.wav beside <id>.normalized.txt."""
    utts, rejections = [], []
    for audio in sorted(Path(root).glob("*/*/*.wav")):
        uid = audio.stem
        trans = audio.with_name(f"{uid}.normalized.txt")
        try:
            text = _decode(trans)
        except FileNotFoundError:
            rejections.append(Rejection(uid, audio.as_posix(), f"transcript {trans} is missing"))
            continue
        except UnicodeDecodeError as e:
            rejections.append(Rejection(uid, trans.as_posix(), f"transcript is not valid UTF-8 ({e.reason})"))
            continue
        utts.append(_utterance(uid, audio, text, uid.split("_")[0]))
    return utts, rejections


def load_folder(root: Path) -> tuple[list[Utterance], list[Rejection]]:
    """Any audio file with a same-stem .txt transcript; the speaker is the parent folder's name."""
    utts, rejections = [], []
    for audio in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        uid = audio.relative_to(root).with_suffix("").as_posix().replace("/", "_")
        trans = audio.with_suffix(".txt")
        try:
            text = _decode(trans)
        except FileNotFoundError:
            rejections.append(Rejection(uid, audio.as_posix(), f"transcript {trans} is missing"))
            continue
        except UnicodeDecodeError as e:
            rejections.append(Rejection(uid, trans.as_posix(), f"transcript is not valid UTF-8 ({e.reason})"))
            continue
        speaker = audio.parent.name if audio.parent != Path(root) else "speaker"
        utts.append(_utterance(uid, audio, text, speaker))
    return utts, rejections


LOADERS = {"librispeech": load_librispeech, "libritts": load_libritts, "folder": load_folder}


def assign_splits(utts: list[Utterance], seed: int, n_test_speakers: int, dev_utterances: int) -> list[Utterance]:
    """Test = all utterances of n_test_speakers held-out speakers; dev = a seeded sample of the others."""
    speakers = sorted({u.speaker for u in utts})
    if len(speakers) <= n_test_speakers:
        raise ValueError(f"{len(speakers)} speakers cannot give {n_test_speakers} unseen test speakers and a train set")
    random.Random(f"{seed}:real-speakers").shuffle(speakers)
    test = set(speakers[:n_test_speakers])
    rest = sorted((u for u in utts if u.speaker not in test), key=lambda u: zlib.crc32(f"{seed}:{u.id}".encode()))
    dev = {u.id for u in rest[:dev_utterances]}
    return [replace(u, split="test" if u.speaker in test else "dev" if u.id in dev else "train") for u in utts]


def materialise_real(params: dict, out_dir: Path) -> dict:
    """Index a real corpus (data.root) into out_dir/manifest.jsonl; audio stays where it is."""
    data = params["data"]
    if not data["root"]:
        raise FileNotFoundError(f"data.source is {data['source']!r} but data.root is not set (params.yaml)")
    root = Path(data["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus folder not found (download it with `taste download`, or set data.root)")
    if data["source"] not in LOADERS:
        raise ValueError(f"unknown data.source {data['source']!r}; expected synthetic, {', '.join(LOADERS)}")
    utts, rejections = LOADERS[data["source"]](root)
    if not utts:
        raise FileNotFoundError(f"{root}: no {data['source']} utterances found")
    sp = data["speech"]
    utts = assign_splits(utts, int(params["shared"]["seed"]), int(sp["n_test_speakers"]), int(sp["dev_utterances"]))
    write_manifest(out_dir / "manifest.jsonl", utts)
    (out_dir / "load_rejections.json").write_text(json.dumps([asdict(r) for r in rejections], indent=2) + "\n",
                                                  encoding="utf-8")
    # the text pool's format is one sentence a line, a blank line between stories; a real corpus has no story
    # metadata, so each train speaker's transcripts, in file order, stand in for a story (the text LM holds whole
    # stories out for its perplexity, which needs more than one short sentence)
    by_speaker: dict[str, list[str]] = {}
    for u in utts:
        if u.split == "train":
            by_speaker.setdefault(u.speaker, []).append(u.text)
    with (out_dir / "text_pool.txt").open("w", encoding="utf-8", newline="\n") as f:
        for texts in by_speaker.values():
            f.write("\n".join(texts) + "\n\n")
    (out_dir / "stories.jsonl").write_text("", encoding="utf-8")
    splits = ("train", "dev", "test")
    info = {"source": data["source"], "root": str(root),
            "utterances": {s: sum(u.split == s for u in utts) for s in splits},
            "hours": {s: round(sum(u.duration for u in utts if u.split == s) / 3600, 4) for s in splits},
            "speakers": {s: len({u.speaker for u in utts if u.split == s}) for s in splits},
            "load_rejections": len(rejections)}
    (out_dir / "corpus_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info
