"""Speech continuation: prompts from held-out test utterances, four systems, timed, written for evaluation.

A prompt is the first words (1.5-3 s by the ground-truth word alignment) of a test utterance of an unseen
speaker; its text comes from the study's ASR on the prompt audio, its TASTE codes from the tokenizer.
Systems: cascade (ASR -> text LM -> text-only TASTE decoder -> vocoder), s3_lm, taslm_token, taslm_embed.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from taste.lm.generate import Sampling, generate_s3, generate_taslm, generate_text
from taste.lm.text_lm import LMVocab
from taste.config import item_seed

SYSTEMS = ("cascade", "s3_lm", "taslm_token", "taslm_embed")
# An ASR transcript faster than this is a decoding loop, not speech (espeak's fastest rate here is 4 words/s).
MAX_WORDS_PER_SECOND = 6.0


class NothingToContinue(ValueError):
    """A prompt with no words: the ASR heard nothing and no text was given (a user error, one line in the CLI)."""


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    utt_id: str
    audio_path: str
    story_id: str | None
    speaker: str
    end_s: float  # the prompt is audio[0:end_s]
    gt_text: str  # ground-truth words of the prompt (for reference only; systems see the ASR text)
    full_text: str  # the whole utterance's transcript


def select_prompts(utterances: Sequence, n_prompts: int, seconds: tuple[float, float], seed: int) -> list[Prompt]:
    """A seeded list of prompts: the longest word prefix ending within [min, max] s, leaving >= 1 word after it."""
    lo, hi = seconds
    candidates = []
    for utt in utterances:
        ends = [w.start + w.duration for w in utt.words]
        ks = [k for k in range(1, len(ends)) if lo <= ends[k - 1] <= hi]
        if ks:
            k = max(ks)
            candidates.append((utt, k, ends[k - 1]))
    if not candidates:
        raise ValueError(f"no test utterance has a word prefix of {lo}-{hi} s (are word alignments present?)")
    random.Random(seed).shuffle(candidates)
    return [Prompt(f"p{i:03d}_{u.id}", u.id, u.audio_path, u.story_id, u.speaker, round(end, 3),
                   " ".join(u.text.split()[:k]), u.text)
            for i, (u, k, end) in enumerate(candidates[:n_prompts])]


@dataclass
class PreparedPrompt:
    prompt: Prompt
    text: str  # the ASR transcript of the prompt audio (ground truth when the ASR returns nothing)
    text_source: str  # "asr" | "ground_truth"
    codes: Tensor | None  # TASTE codes of the prompt words [N, n_q]
    units: Tensor | None  # the prompt's 25 Hz units [U]
    speaker: Tensor  # [256]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Systems:
    """Everything continuation needs, loaded once. Missing systems are None and skipped."""

    tokenizer: Any  # LM subword tokenizer
    vocab: LMVocab
    text_lm: Any
    vocoder: Any
    mel_cfg: Any
    asr: Any = None
    asr_tokenizer: Any = None
    taste: Any = None  # TasteTokenizer (main)
    taste_text_only: Any = None  # TasteTokenizer (text-only decoder, the cascade's)
    taslm: dict[str, Any] = field(default_factory=dict)  # variant -> TASLM
    s3_lm: Any = None
    unit_rate_hz: int = 25


def prompt_seed(seed: int, prompt_id: str) -> int:
    """The random seed of one prompt's continuation (LM sampling, unit decoding, vocoder noise) from the study seed
    and the prompt id alone, by a stable hash (`taste.config.item_seed`): not from the prompt's position in
    a list, so a prompt continues the same way alone, in any order or subset, and in `taste continue`."""
    return item_seed(seed, "continuation", prompt_id)


UNIT_BACKENDS = ("trained", "s3_pretrained")  # units.backend, as the units stage (02a) reads it


class UnitBackendError(ValueError):
    """units.backend names no known unit tokenizer."""


@dataclass(frozen=True)
class PromptUnitEncoder:
    """The study's prompt unit encoder: the units the S3-unit LM was trained on, from a prompt's waveform.

    backend "trained": `model` is the units stage's UnitTokenizer, fed the study's log-mel of the audio;
    backend "s3_pretrained": `model` is CosyVoice's S3 tokenizer, fed the waveform itself (`s3_units`).
    Build it with `prompt_unit_encoder(params["units"], models)`."""

    backend: str
    model: Any
    source: str = ""  # where it was loaded from (for messages)
    sample_rate: int = 16000

    def encode(self, wav: np.ndarray, mel_fn) -> Tensor:
        """wav: np.ndarray[T] at sample_rate -> Long[U]. mel_fn(wav) -> log-mel [n_mels, F] (trained backend only)."""
        if self.backend == "s3_pretrained":
            from taste.units.s3_pretrained import s3_units

            return s3_units(self.model, [np.asarray(wav, dtype=np.float32)], self.sample_rate)[0]
        mel = mel_fn(wav)[None]  # (1, n_mels, F)
        with torch.no_grad():
            units, lengths = self.model.encode(mel, torch.tensor([mel.shape[-1]]))
        return units[0, : int(lengths[0])]


def prompt_unit_encoder(units_params: dict[str, Any], models: str | Path, sample_rate: int = 16000,
                        unit_dir: str | Path | None = None) -> PromptUnitEncoder:
    """The prompt unit encoder of the configured unit backend (params["units"], read as the units stage reads it):

    - backend "trained" (the default): `UnitTokenizer.from_pretrained(models / "units")` (or `unit_dir`);
    - backend "s3_pretrained": the local S3 tokenizer `load_s3_tokenizer(units.s3_path, units.s3_name)`.
    An unknown backend -> UnitBackendError; a missing tokenizer -> FileNotFoundError naming the path."""
    backend = units_params["backend"]
    if backend == "trained":
        from taste.units.model import UnitTokenizer

        directory = Path(unit_dir) if unit_dir is not None else Path(models) / "units"
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no trained unit tokenizer (units.backend is trained: run the units "
                                    f"stage first)")
        return PromptUnitEncoder("trained", UnitTokenizer.from_pretrained(directory), str(directory), sample_rate)
    if backend == "s3_pretrained":
        from taste.units.s3_pretrained import load_s3_tokenizer

        if not units_params["s3_path"]:
            raise FileNotFoundError("units.backend is s3_pretrained but units.s3_path is not set (a local .onnx file)")
        path = Path(units_params["s3_path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: S3 tokenizer weights not found (units.s3_path; units.backend is "
                                    f"s3_pretrained)")
        model = load_s3_tokenizer(path, units_params["s3_name"])
        return PromptUnitEncoder("s3_pretrained", model, str(path), sample_rate)
    raise UnitBackendError(f"units.backend {backend!r} is not one of {', '.join(UNIT_BACKENDS)}")


def prompt_units(unit_model, wav: np.ndarray, mel_cfg) -> Tensor:
    """The 25 Hz units of `wav: np.ndarray[T]` (the prompt audio alone) -> Long[U].

    unit_model: a PromptUnitEncoder (`prompt_unit_encoder`, any backend) or a trained UnitTokenizer itself."""
    from taste.data.features import log_mel

    encoder = unit_model if isinstance(unit_model, PromptUnitEncoder) else PromptUnitEncoder("trained", unit_model)
    return encoder.encode(wav, lambda w: log_mel(torch.from_numpy(np.asarray(w, dtype=np.float32)), mel_cfg))


def prepare_audio(p: Prompt, wav: np.ndarray, systems: Systems, speaker_embed, unit_model=None,
                  text: str | None = None) -> PreparedPrompt:
    """Prepare a prompt from its audio alone: speaker embedding, S3 units (when `unit_model` is given: the
    PromptUnitEncoder of `prompt_unit_encoder`, or a trained UnitTokenizer), transcript and
    TASTE codes are all computed from `wav`, never from the utterance it was cut from. The study and `taste continue`
    both come through here, so the same prompt audio gives the same inputs.

    speaker_embed: np.ndarray[T] -> np.ndarray[256] (`taste.data.speaker_embed.conditioning_encoder(params).embed`:
    the prepare stage's embedder, so the prompt is embedded as the training speech was)."""
    speaker = torch.from_numpy(np.asarray(speaker_embed(wav), dtype=np.float32))
    units = prompt_units(unit_model, wav, systems.mel_cfg) if unit_model is not None else None
    return prepare_wav(p, wav, systems, speaker, units, text)


def prepare_prompt(p: Prompt, systems: Systems, speaker_embed, unit_model=None) -> PreparedPrompt:
    """Cut a test utterance to its prompt FIRST, then prepare it from that audio alone (see prepare_audio)."""
    from taste.data.audio_io import read_audio

    wav = read_audio(p.audio_path, systems.mel_cfg.sample_rate)[: int(round(p.end_s * systems.mel_cfg.sample_rate))]
    return prepare_audio(p, wav, systems, speaker_embed, unit_model)


def prepare_wav(p: Prompt, wav: np.ndarray, systems: Systems, speaker: Tensor, units: Tensor | None,
                text: str | None = None) -> PreparedPrompt:
    """Transcribe the prompt audio with the study's ASR (unless text is given) and extract its TASTE codes (timed)."""
    from taste.asr.whisper import transcribe
    from taste.data.features import log_mel

    mel = log_mel(torch.from_numpy(np.asarray(wav, dtype=np.float32)), systems.mel_cfg)  # (n_mels, F)
    timings, source = {}, "given"
    if text is None:
        text, source = p.gt_text, "ground_truth"
        if systems.asr is not None:
            t0 = time.perf_counter()
            hyp = transcribe(systems.asr, systems.asr_tokenizer, mel[None])[0]
            timings["asr_s"] = time.perf_counter() - t0
            seconds = len(wav) / systems.mel_cfg.sample_rate
            if hyp.split() and (len(hyp.split()) <= MAX_WORDS_PER_SECOND * seconds or not p.gt_text):
                text, source = hyp, "asr"
            elif hyp.split():
                source = "ground_truth (asr implausible)"  # e.g. a looping "the the the ..."
    if not text.split():
        raise NothingToContinue(f"prompt {p.prompt_id}: no words to continue (ASR returned nothing, no text given)")
    codes = None
    if systems.taste is not None:
        t0 = time.perf_counter()
        codes = systems.taste.encode(mel, text).codes
        timings["encode_s"] = time.perf_counter() - t0
    return PreparedPrompt(p, text, source, codes, units, speaker, timings)


def _cut(units: Tensor, boundaries: Sequence[int], n_prompt: int) -> Tensor:
    """The continuation's units: from the first generated word's start (the decoder speaks prompt + continuation)."""
    return units[boundaries[n_prompt]:] if len(boundaries) > n_prompt else units[:0]


def _speak(systems: Systems, units: Tensor, speaker: Tensor, seed: int | None = None) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    wav = (systems.vocoder.synthesise(units, speaker, seed=seed) if len(units)
           else np.zeros(1600, dtype=np.float32))
    return wav, time.perf_counter() - t0


@dataclass
class Draft:
    """A continuation between the LM and the vocoder: text and codes known, units once decoded."""

    system: str
    prepared: PreparedPrompt
    text: str
    lm_steps: int
    timings: dict[str, float]
    codes: Tensor | None = None  # TASLM: prompt + generated codes [N, n_q]
    units: Tensor | None = None  # the continuation's units
    seed: int | None = None  # this continuation's seed (LM sampling; also its unit decoding and vocoder noise)


def generate_continuation(system: str, pp: PreparedPrompt, systems: Systems, s: Sampling, target_words: int,
                          max_units: int, seed: int, taste_input: Any = None) -> Draft:
    """The LM part of one system on one prompt (timed). The S3-unit LM's draft already has its units.

    `taste_input` (TASLM only): the codebook whose vectors the LM reads for the TASTE codes (default the
    tokenizer's own; `taste_use.ZeroTasteInput` for the ablation). It also quantises what the LM predicts.
    seed: this draft's own seed (`prompt_seed(study_seed, prompt_id)` in the study), kept in Draft.seed."""
    g = torch.Generator().manual_seed(seed)
    timings = dict(pp.timings)
    if system in ("s3_lm", "cascade"):
        timings.pop("encode_s", None)  # these systems do not read the prompt's TASTE codes
    t0 = time.perf_counter()
    if system == "s3_lm":
        if pp.units is None:
            raise ValueError(f"prompt {pp.prompt.prompt_id}: the S3-unit LM needs the prompt's units (none found)")
        gen = generate_s3(systems.s3_lm, systems.tokenizer, systems.vocab, pp.text, pp.units, target_words,
                          max_units, s, g)
        return Draft(system, pp, gen.text, gen.lm_steps, {**timings, "lm_s": time.perf_counter() - t0,
                                                          "decode_s": 0.0}, units=gen.units, seed=seed)
    if system == "cascade":
        gen = generate_text(systems.text_lm, systems.tokenizer, systems.vocab, pp.text, target_words, s, g)
        return Draft(system, pp, gen.text, gen.lm_steps, {**timings, "lm_s": time.perf_counter() - t0}, seed=seed)
    from taste.asr.bpe import word_ids

    gen = generate_taslm(systems.taslm[system.split("_", 1)[1]], taste_input or systems.taste, systems.tokenizer,
                         systems.vocab, word_ids, pp.text, pp.codes, target_words, s, g)
    return Draft(system, pp, gen.text, gen.lm_steps, {**timings, "lm_s": time.perf_counter() - t0}, codes=gen.codes,
                 seed=seed)


def decode_drafts(drafts: Sequence[Draft], systems: Systems, seed: int, batch_size: int = 16) -> None:
    """Speak prompt + continuation through the unit decoder in batches; keep the continuation's units.

    The batch's decoding time is shared equally among its prompts (decode_s). Each row samples with its draft's
    own seed (Draft.seed; `seed` for a draft without one), so a prompt's units do not depend on its batch-mates.
    """
    todo = [d for d in drafts if d.units is None]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start: start + batch_size]
        decoder = systems.taste_text_only if chunk[0].system == "cascade" else systems.taste
        texts = [f"{d.prepared.text} {d.text}".strip() for d in chunk]
        vectors = None if chunk[0].codes is None else [systems.taste.codes_to_vectors(d.codes) for d in chunk]
        speakers = torch.stack([d.prepared.speaker for d in chunk])
        t0 = time.perf_counter()
        seeds = [int(seed) if d.seed is None else d.seed for d in chunk]
        results = decoder.decode_batch(texts, vectors, speakers, seed=seeds)
        share = (time.perf_counter() - t0) / len(chunk)
        for d, r in zip(chunk, results):
            d.units = _cut(r.units, r.word_boundaries, len(d.prepared.text.split()))
            d.timings["decode_s"] = share


def finish(d: Draft, systems: Systems) -> tuple[dict[str, Any], np.ndarray]:
    """Vocode a decoded draft -> (record without wav_path, waveform of the continuation)."""
    wav, d.timings["vocoder_s"] = _speak(systems, d.units, d.prepared.speaker, d.seed)
    d.timings["end_to_end_s"] = sum(v for k, v in d.timings.items() if k != "end_to_end_s")
    rec = {"system": d.system, "prompt_id": d.prepared.prompt.prompt_id, "prompt_text": d.prepared.text,
           "continuation_text": d.text, "n_words": len(d.text.split()), "lm_steps": d.lm_steps,
           "generated_seconds": len(d.units) / systems.unit_rate_hz, "units": d.units.tolist(),
           "timings": {k: round(v, 4) for k, v in d.timings.items()}}
    if d.codes is not None:
        rec["codes"] = d.codes.tolist()
    return rec, wav


def continue_prompt(system: str, pp: PreparedPrompt, systems: Systems, s: Sampling, target_words: int,
                    max_units: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """One system, one prompt -> (record without wav_path, waveform of the continuation).

    seed: the STUDY seed; the prompt's own seed is `prompt_seed(seed, pp.prompt.prompt_id)`, as in `run_system`."""
    draft = generate_continuation(system, pp, systems, s, target_words, max_units,
                                  prompt_seed(seed, pp.prompt.prompt_id))
    decode_drafts([draft], systems, seed, batch_size=1)
    return finish(draft, systems)


def run_system(system: str, prepared: Sequence[PreparedPrompt], systems: Systems, s: Sampling, target_words: int,
               max_units: int, seed: int, out_root: str | Path, decode_batch: int = 16) -> list[dict[str, Any]]:
    """Continue every prompt with one system; write out_root/<system>/{continuations.jsonl, <prompt_id>.wav}.

    Each prompt samples with `prompt_seed(seed, prompt_id)` (not seed + its index), so its continuation does not
    depend on the other prompts, their order or the decode batch."""
    from taste.data.audio_io import write_audio

    out = Path(out_root) / system
    out.mkdir(parents=True, exist_ok=True)
    drafts = [generate_continuation(system, pp, systems, s, target_words, max_units,
                                    prompt_seed(seed, pp.prompt.prompt_id)) for pp in prepared]
    decode_drafts(drafts, systems, seed, decode_batch)
    records = []
    for d in drafts:
        rec, wav = finish(d, systems)
        wav_path = out / f"{d.prepared.prompt.prompt_id}.wav"
        write_audio(wav_path, wav, systems.mel_cfg.sample_rate)
        p = d.prepared.prompt
        records.append({**rec, "utt_id": p.utt_id, "story_id": p.story_id, "speaker": p.speaker,
                        "prompt_text_source": d.prepared.text_source, "prompt_gt_text": p.gt_text,
                        "prompt_seconds": p.end_s, "wav_path": str(wav_path)})
    with (out / "continuations.jsonl").open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return records


def write_prompts(prompts: Sequence[Prompt], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(asdict(p)) + "\n" for p in prompts), encoding="utf-8")


def seconds_per_word(utterances: Sequence) -> float:
    """Mean speech seconds per word of a split (caps how many units the S3 LM may generate)."""
    words = sum(len(u.text.split()) for u in utterances)
    return sum(u.duration for u in utterances) / max(words, 1)


def load_systems(params: dict[str, Any], systems: Sequence[str] = SYSTEMS) -> Systems:
    """Load the trained LMs (text LM and S3-unit LM: stage lm_pretrain; TASLM variants: stage taslm) and their inputs
    (ASR, TASTE tokenizers, vocoder) from models/."""
    from taste.asr.bpe import load_bpe
    from taste.asr.whisper import load_asr
    from taste.data.features import MelConfig
    from taste.lm.pipeline import lm_dir, load_text_lm, s3_lm_dir, text_lm_dir
    from taste.lm.s3_lm import S3UnitLM
    from taste.lm.taslm import TASLM
    from taste.tokenizer import TasteTokenizer
    from taste.vocoder import UnitVocoder

    models = Path(params["shared"]["paths"]["models"])
    text_lm, tok, vocab = load_text_lm(text_lm_dir(params))
    out = Systems(tokenizer=tok, vocab=vocab, text_lm=text_lm, vocoder=UnitVocoder.from_pretrained(models / "vocoder"),
                  mel_cfg=MelConfig.from_dict(params["shared"]["features"], params["shared"]["sample_rate"]),
                  asr=load_asr(models / "asr"), asr_tokenizer=load_bpe(models / "asr"),
                  taste=TasteTokenizer.from_pretrained(params["lm"]["taste_model"]),
                  unit_rate_hz=params["units"]["rate_hz"])
    if "cascade" in systems:
        out.taste_text_only = TasteTokenizer.from_pretrained(params["lm"]["taste_text_only"])
    for name in systems:
        if name.startswith("taslm_"):
            out.taslm[name.split("_", 1)[1]] = TASLM.from_pretrained(lm_dir(params) / name, base_lm=text_lm)
    if "s3_lm" in systems:
        out.s3_lm = S3UnitLM.from_pretrained(s3_lm_dir(params), base_lm=text_lm)
    return out


def sampling_from_params(params: dict[str, Any]) -> Sampling:
    c = params["lm"]["continuation"]
    return Sampling(top_p=c["top_p"], temperature=c["temperature"], repetition_penalty=c["repetition_penalty"],
                    unit_top_k=c["unit_top_k"])
