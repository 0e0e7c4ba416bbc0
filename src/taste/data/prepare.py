"""Stage `prepare`: validate every utterance of data/raw, write split manifests, log-mel features, F0 tracks, speaker
embeddings, the phone inventory and a rejection report into data/prepared.

Word and phone timings are never invented: an utterance whose corpus gives none (the real corpora) is timed by forced
alignment of its known transcript (`taste.data.forced_align`, dictionary from the corpus's own transcripts) and marked
`timing_source="forced_alignment"`; one that cannot be aligned is rejected like any other bad item. The synthetic
corpus' exact espeak timings ("corpus") are kept as they are, never re-aligned."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .audio_io import write_audio
from .features import MelConfig, log_mel
from .loaders import save_tensor_map
from .materialise import repo_relative
from .pitch import PitchConfig, track_pitch
from .records import TIMING_SOURCES, Utterance, write_manifest
from .speaker_embed import conditioning_encoder
from .validate import (AudioValidationError, Rejection, Repair, TooManyRejectionsError, TranscriptValidationError,
                       ValidationConfig, read_manifest_lenient, validate_utterance)

SPLITS = ("train", "dev", "test", "swap_global", "swap_local")
ALIGN_FAILED = "forced alignment failed"


def validation_config(params: dict) -> ValidationConfig:
    """The prepare stage's checks; a params file without a `prepare` section (a command's own) keeps the defaults."""
    cfg = ValidationConfig(sample_rate=int(params["shared"]["sample_rate"]))
    prep = params.get("prepare")
    if not prep:
        return cfg
    return replace(cfg, chars_per_second=tuple(prep["chars_per_second"]), clip_share=float(prep["clip_share"]))


def _resolve(audio_path: str, root: Path) -> Path:
    p = Path(audio_path)
    return p if p.is_absolute() else root / p


def validate_all(utts: list[Utterance], cfg: ValidationConfig, root: Path, out_dir: Path):
    """Yield (utterance, wav, the manifest's audio_path) for the valid ones; fills and returns rejections / repairs
    lists through the generator.

    Repaired audio is written to out_dir/audio/<id>.wav and the utterance points there; the third item is still the
    user's file as the manifest named it, for messages about the utterance.
    """
    rejections: list[Rejection] = []
    repairs: list[Repair] = []
    seen: set[str] = set()

    def gen():
        for utt in utts:
            path = _resolve(utt.audio_path, root)
            if utt.id in seen:
                rejections.append(Rejection(utt.id, utt.audio_path, "duplicate utterance id"))
                continue
            seen.add(utt.id)
            if utt.split not in SPLITS:
                rejections.append(Rejection(utt.id, utt.audio_path, f"unknown split {utt.split!r}"))
                continue
            try:
                wav, checked, fixes = validate_utterance(utt, path, cfg)
            except (FileNotFoundError, AudioValidationError, TranscriptValidationError) as e:
                rejections.append(Rejection(utt.id, utt.audio_path, str(e)))
                continue
            if any(f.startswith(("resampled", "downmixed")) for f in fixes):
                new_path = out_dir / "audio" / f"{utt.id}.wav"
                write_audio(new_path, wav, cfg.sample_rate)
                checked = replace(checked, audio_path=repo_relative(new_path))
            repairs.extend(Repair(utt.id, utt.audio_path, f) for f in fixes)
            yield checked, wav, utt.audio_path

    return gen(), rejections, repairs


class ForcedTimer:
    """Word and phone timings for utterances whose corpus gives none, by forced alignment of the known transcript.

    The aligner (`taste.data.forced_align.ForcedAligner`, built on first use) takes its dictionary from `sentences`,
    the corpus's own transcripts: this is data preparation with the transcript known, not judging. It needs no
    language model and keeps no cache; each utterance's timings are independent of the others'.
    """

    def __init__(self, sentences: list[str]):
        self.sentences = sentences
        self._aligner = None

    def ready(self) -> None:
        """Build the aligner (once). Outside any per-utterance error handling: an aligner that cannot be built is the
        run's error, never a rejection of every utterance."""
        from .forced_align import ForcedAligner

        if self._aligner is None:
            self._aligner = ForcedAligner(self.sentences)
            self._aligner.load()

    def __call__(self, utt: Utterance, wav: np.ndarray, sample_rate: int) -> Utterance:
        """utt with aligned words and phones, timing_source="forced_alignment"; AlignmentError (a ValueError) saying
        why when the transcript cannot be aligned to the audio. `wav`: float mono [T] at `sample_rate` (any rate)."""
        self.ready()
        words, phones = self._aligner.align_phones(wav, utt.text, sample_rate)
        return utt.replace(words=words, phones=phones, timing_source="forced_alignment")


def alignment_problem(file: str | Path, error: Exception) -> str:
    """The rejection message of an utterance the aligner could not time: "forced alignment failed: <file>: <why>"."""
    reason = str(error)
    if reason.startswith(ALIGN_FAILED):
        reason = reason[len(ALIGN_FAILED):].lstrip(": ")
    return f"{ALIGN_FAILED}: {file}: {reason or type(error).__name__}"


def _summary(by_split: dict[str, list[Utterance]], n_total: int, rejections, repairs, phones: Counter) -> dict:
    """The stage's metrics: sizes per split, speaking rates, alignment coverage and timing sources, rejections."""
    metrics: dict = {"utterances": {}, "hours": {}, "speakers": {}, "words_per_second": {},
                     "words_per_second_by_speaker": {}, "alignment_coverage": {}, "timing_source": {}}
    for split in SPLITS:
        utts = by_split.get(split, [])
        metrics["utterances"][split] = len(utts)
        metrics["hours"][split] = round(sum(u.duration for u in utts) / 3600, 4)
        metrics["speakers"][split] = len({u.speaker for u in utts})
        words = sum(len(u.text.split()) for u in utts)
        metrics["words_per_second"][split] = round(words / max(1e-9, sum(u.duration for u in utts)), 3)
        aligned = [u for u in utts if u.words]
        speech = sum(sum(w.duration for w in u.words) for u in aligned)
        metrics["alignment_coverage"][split] = {
            "utterances_aligned": round(len(aligned) / max(1, len(utts)), 4),
            "speech_share_of_audio": round(speech / max(1e-9, sum(u.duration for u in aligned)), 4)}
        sources = Counter(u.timing_source for u in aligned)
        metrics["timing_source"][split] = {s: sources.get(s, 0) for s in TIMING_SOURCES}
    per_speaker = defaultdict(lambda: [0, 0.0])
    for utts in by_split.values():
        for u in utts:
            per_speaker[u.speaker][0] += len(u.text.split())
            per_speaker[u.speaker][1] += u.duration
    metrics["words_per_second_by_speaker"] = {s: round(w / d, 3) for s, (w, d) in sorted(per_speaker.items())}
    metrics["total_hours"] = round(sum(metrics["hours"].values()), 4)
    metrics["n_input"] = n_total
    metrics["n_rejected"] = len(rejections)
    metrics["n_alignment_failed"] = sum(r.problem.startswith(ALIGN_FAILED) for r in rejections)
    metrics["rejection_share"] = round(len(rejections) / max(1, n_total), 5)
    metrics["n_repaired"] = len({r.id for r in repairs})
    metrics["phone_inventory"] = len(phones)
    return metrics


def pitch_config(params: dict, mel_cfg: MelConfig) -> PitchConfig:
    """params["shared"]["pitch"] with the sample rate and hop of the log-mel features (one F0 per feature frame)."""
    d = dict(params["shared"].get("pitch") or {})
    return PitchConfig.from_dict({**d, "sample_rate": mel_cfg.sample_rate, "hop_length": mel_cfg.hop_length})


def _voiced_share(pitch: dict[str, dict[str, torch.Tensor]]) -> float:
    """Share of voiced (F0 > 0) frames over every kept utterance."""
    tracks = [f0 for split in pitch.values() for f0 in split.values()]
    frames = sum(f0.numel() for f0 in tracks)
    return round(sum(int((f0 > 0).sum()) for f0 in tracks) / max(1, frames), 4)


def _read_raw(raw_dir: Path) -> tuple[list[Utterance], list[Rejection]]:
    """The raw manifest's readable records, and the rejections of the unreadable ones and of the transcripts a
    real-corpus loader could not read (data/raw/load_rejections.json)."""
    utts, rejections = read_manifest_lenient(raw_dir / "manifest.jsonl")
    if (raw_dir / "load_rejections.json").is_file():
        rejections += [Rejection(**r) for r in json.loads((raw_dir / "load_rejections.json").read_text("utf-8"))]
    return utts, rejections


class _PreparedSplits:
    """What prepare keeps of each accepted utterance, by split: records, log-mel, F0, phones, speaker embeddings
    (embedded in batches of `batch` when an encoder is given)."""

    def __init__(self, mel_cfg: MelConfig, pitch_cfg, encoder, batch: int = 64):
        self.mel_cfg, self.pitch_cfg, self.encoder, self.batch = mel_cfg, pitch_cfg, encoder, batch
        self.by_split: dict[str, list[Utterance]] = defaultdict(list)
        self.features: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
        self.pitch: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)  # F0 in Hz per feature frame, 0 = unvoiced
        self.speakers: dict[str, torch.Tensor] = {}
        self.phones: Counter = Counter()
        self._pending: list[tuple[str, np.ndarray]] = []

    def add(self, utt: Utterance, wav: np.ndarray) -> None:
        self.by_split[utt.split].append(utt)
        self.features[utt.split][utt.id] = log_mel(torch.from_numpy(wav), self.mel_cfg).to(torch.float16)
        self.pitch[utt.split][utt.id] = track_pitch(wav, self.pitch_cfg)
        self.phones.update(p.phone for p in utt.phones)
        self._pending.append((utt.id, wav))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Embed the utterances still waiting for their speaker embedding."""
        if self.encoder is not None and self._pending:
            for (uid, _), emb in zip(self._pending, self.encoder.embed_batch([w for _, w in self._pending])):
                self.speakers[uid] = torch.from_numpy(emb)
        self._pending.clear()

    def write(self, out_dir: Path) -> None:
        for split in SPLITS:
            write_manifest(out_dir / f"{split}.jsonl", self.by_split.get(split, []))
            save_tensor_map(out_dir / "features" / f"{split}.safetensors", self.features.get(split, {}))
            save_tensor_map(out_dir / "pitch" / f"{split}.safetensors", self.pitch.get(split, {}), torch.float32)
        if self.encoder is not None:
            save_tensor_map(out_dir / "speaker_embeddings.safetensors", self.speakers)
        (out_dir / "phones.json").write_text(
            json.dumps({"phones": sorted(self.phones), "counts": dict(sorted(self.phones.items()))}, indent=2) + "\n",
            encoding="utf-8")


def _write_rejections(out_dir: Path, raw_dir: Path, rejections: list[Rejection], repairs: list, n_total: int,
                      max_share: float) -> None:
    """rejections.json; TooManyRejectionsError (after writing it) when more than max_share were rejected."""
    share = len(rejections) / max(1, n_total)
    report = {"n_input": n_total, "n_rejected": len(rejections), "share": round(share, 5), "max_share": max_share,
              "rejections": [asdict(r) for r in rejections], "repairs": [asdict(r) for r in repairs]}
    (out_dir / "rejections.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if share > max_share:
        raise TooManyRejectionsError(
            f"{raw_dir / 'manifest.jsonl'}: {len(rejections)} of {n_total} utterances rejected ({share:.1%} > "
            f"prepare.max_rejection_share {max_share:.1%}); see {out_dir / 'rejections.json'}. First: "
            + "; ".join(f"{r.id}: {r.problem}" for r in rejections[:3]))


def prepare(params: dict, raw_dir: Path, out_dir: Path, *, root: Path = Path("."), embed_speakers: bool = True,
            progress: bool = True) -> dict:
    """Validate data/raw/manifest.jsonl and write data/prepared -> metrics (also returned when nothing is rejected).

    Utterances without word timings are forced-aligned (see ForcedTimer); those that cannot be aligned are rejected,
    the message naming the file the manifest gave (not a resampled copy).

    Raises TooManyRejectionsError (after writing rejections.json) when the rejected share exceeds
    prepare.max_rejection_share.
    """
    raw_dir, out_dir, root = Path(raw_dir), Path(out_dir), Path(root)
    cfg = validation_config(params)
    mel_cfg = MelConfig.from_dict(params["shared"]["features"], cfg.sample_rate)
    utts, rejections = _read_raw(raw_dir)
    n_total = len(utts) + len(rejections)
    stream, more_rejections, repairs = validate_all(utts, cfg, root, out_dir)
    align_rejections: list[Rejection] = []
    timer = ForcedTimer([u.text for u in utts if not u.words and u.text.strip()])
    encoder = None
    if embed_speakers and params["prepare"]["speaker_embedding"] == "resemblyzer":
        encoder = conditioning_encoder(params)
    kept = _PreparedSplits(mel_cfg, pitch_config(params, mel_cfg), encoder)
    for utt, wav, source in tqdm(stream, total=len(utts), desc="prepare", mininterval=10, disable=not progress):
        if not utt.words:  # the corpus gave no timings: align the known transcript, never invent them
            timer.ready()
            try:
                utt = timer(utt, wav, cfg.sample_rate)
            except ValueError as e:  # AlignmentError (pocketsphinx's own errors become one inside the aligner)
                align_rejections.append(Rejection(utt.id, source, alignment_problem(_resolve(source, root), e)))
                continue
        kept.add(utt, wav)
    kept.flush()
    rejections += more_rejections + align_rejections
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_rejections(out_dir, raw_dir, rejections, repairs, n_total, float(params["prepare"]["max_rejection_share"]))
    kept.write(out_dir)
    metrics = _summary(kept.by_split, n_total, rejections, repairs, kept.phones)
    metrics["voiced_share"] = _voiced_share(kept.pitch)
    (out_dir / "prepare_summary.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metrics
