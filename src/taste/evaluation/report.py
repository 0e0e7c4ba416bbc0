"""The reviewers' report: per-continuation measurements, per-system summaries with bootstrap CIs, the paper's
Table 2 beside ours, the ordering checks (TASLM vs cascade and vs the S3-unit LM) and the headline metrics."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SYSTEMS = ("cascade", "s3_lm", "taslm_token", "taslm_embed")
SAMPLE_RATE = 16000
MIN_SAMPLES = SAMPLE_RATE // 10

# Table 2 of the paper (GPT-4o score 1-5 on the ASR transcript, UTMOS 1-5, human MOS 1-5).
PAPER_TABLE2 = {
    "cascade": {"paper_system": "Cascade 1B", "gpt4o": 3.15, "utmos": 4.25, "human_mos": 4.00},
    "s3_lm": {"paper_system": "Baseline S3", "gpt4o": 1.37, "utmos": 4.04, "human_mos": 2.84},
    "taslm_token": {"paper_system": "TASLM token", "gpt4o": 3.08, "utmos": 4.07, "human_mos": 3.93},
    "taslm_embed": {"paper_system": "TASLM embed.", "gpt4o": 3.16, "utmos": 4.22, "human_mos": 4.16},
}
PAPER_SCALE = "Llama-3.2-1B + LoRA, LibriSpeech/LibriTTS prompts, GPT-4o judge, human raters"

# judge -> (what it is, higher_is_better)
JUDGES = {
    "llm_judge": ("LLM judge 1-5 (paper rubric)", True),
    "embed_sim": ("MiniLM cosine prompt vs continuation", True),
    "ref_logppl": ("log perplexity under the held-out reference LM", False),
    "story_consistency": ("keeps the story's entities and topic, 0-1", True),
    "dnsmos_ovrl": ("DNSMOS overall 1-5", True),
    "utmos": ("UTMOS 1-5 (local checkpoint)", True),
    "speaker_sim": ("resemblyzer cosine prompt vs continuation", True),
    "rate_diff": ("relative speaking-rate difference prompt vs continuation", False),
    "asr_ps_wer": ("WER between the study ASR and pocketsphinx transcripts", False),
    # The same coherence judges on pocketsphinx's transcripts: a check that the study's ASR does not decide them.
    "embed_sim_ps": ("MiniLM cosine, pocketsphinx transcript", True),
    "ref_logppl_ps": ("reference-LM log perplexity, pocketsphinx transcript", False),
    "story_consistency_ps": ("story consistency, pocketsphinx transcript", True),
}
COHERENCE_JUDGES = ("llm_judge", "embed_sim", "ref_logppl", "story_consistency")


class ContinuationsFileError(ValueError):
    """continuations.jsonl is missing a field or points at missing audio."""


@dataclass(frozen=True)
class Continuation:
    system: str
    prompt_id: str
    story_id: str | None
    prompt_text: str  # what the systems read: the ASR transcript of the prompt audio
    prompt_wav: str
    continuation_text: str
    wav: str
    prompt_end_s: float | None = None  # the prompt is prompt_wav[0:prompt_end_s] (None = the whole file)
    prompt_text_source: str = ""  # asr | ground_truth | ground_truth (asr implausible) | given
    # the prompt's true words: a MEASUREMENT aid only (speaking rate of the prompt), never a system input
    prompt_gt_text: str = ""


def _prompt_audio(root: Path) -> dict[str, tuple[str, float | None]]:
    """prompt_id -> (audio path, end seconds) from the taslm stage's prompts.jsonl, when it exists."""
    path = root / "prompts.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["prompt_id"]: (r["audio_path"], r.get("end_s")) for r in rows}


def read_continuations(path: str | Path, system: str) -> list[Continuation]:
    """continuations.jsonl of one system. The prompt's audio is `prompt_wav` in the record, or else the utterance
    named in ../prompts.jsonl cut at its `end_s`; the continuation's audio is `wav` or `wav_path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"continuations not found: {path} (run the taslm stage)")
    prompts = _prompt_audio(path.parent.parent)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            pid = str(r["prompt_id"])
            prompt_wav, end_s = (r["prompt_wav"], None) if "prompt_wav" in r else prompts[pid]
            rows.append(Continuation(system, pid, r.get("story_id"), r["prompt_text"], prompt_wav,
                                     r.get("continuation_text", ""), r.get("wav") or r["wav_path"], end_s,
                                     r.get("prompt_text_source", ""), r.get("prompt_gt_text") or ""))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ContinuationsFileError(f"{path}:{n}: bad continuation record, or its prompt is not in "
                                         f"prompts.jsonl ({err!r})") from err
    return rows


def cut_prompts(items: Sequence[Continuation], read: Callable[[str], np.ndarray], out_dir: str | Path
                ) -> list[Continuation]:
    """Write each distinct prompt, cut to its end, as out_dir/<prompt_id>.wav and point the items at those files,
    so every judge and the listening test hear exactly what the systems heard."""
    from taste.data.audio_io import write_audio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = {}
    result = []
    for c in items:
        if c.prompt_id not in done:
            wav = read(c.prompt_wav)
            if c.prompt_end_s is not None:
                wav = wav[: int(round(c.prompt_end_s * SAMPLE_RATE))]
            done[c.prompt_id] = str(out_dir / f"{c.prompt_id}.wav")
            write_audio(done[c.prompt_id], wav, SAMPLE_RATE)
        result.append(dataclasses.replace(c, prompt_wav=done[c.prompt_id], prompt_end_s=None))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Paralinguistic consistency
# ---------------------------------------------------------------------------------------------------------------------
def active_seconds(wav: np.ndarray, sr: int = SAMPLE_RATE, threshold_db: float = -35.0) -> float:
    """Seconds between the first and last 10 ms frame louder than threshold_db below the peak frame."""
    hop = sr // 100
    n = len(wav) // hop
    if n == 0:
        return 0.0
    energy = np.sqrt(np.mean(wav[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)) + 1e-10
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > threshold_db)
    return (loud[-1] - loud[0] + 1) * hop / sr


def speaking_rate(wav: np.ndarray, n_words: int, sr: int = SAMPLE_RATE) -> float:
    """Words per second of active speech (NaN when nothing was said)."""
    seconds = active_seconds(wav, sr)
    return n_words / seconds if n_words and seconds > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------------------
# Per-continuation measurements (every model passed in as a callable, so tests use fakes)
# ---------------------------------------------------------------------------------------------------------------------
NO_QUALITY = {"ovrl": np.nan, "sig": np.nan, "bak": np.nan}


def audio_row(c: Continuation, wav: np.ndarray, prompt_wav: np.ndarray, asr_text: str, ps_text: str, q: dict,
              utmos_value: float, speaker_sim: float) -> dict:
    """measure_audio's row of one continuation from its judges' outputs."""
    from taste.metrics.wer import wer

    # rates count the words each side was meant to say, not what a weak recogniser heard: the prompt's true
    # words (prompt_gt_text; its ASR transcript only when the record has none) and the intended continuation
    rate_p = speaking_rate(prompt_wav, len((c.prompt_gt_text or c.prompt_text).split()))
    rate_c = speaking_rate(wav, len(c.continuation_text.split()))
    return {
        "system": c.system, "prompt_id": c.prompt_id, "story_id": c.story_id, "prompt_text": c.prompt_text,
        "prompt_rate_text": "ground_truth" if c.prompt_gt_text else "asr",
        "intended_text": c.continuation_text, "asr_text": asr_text, "ps_text": ps_text,
        "asr_ps_wer": wer([asr_text], [ps_text]) if asr_text.strip() else float("nan"),
        "dnsmos_ovrl": q["ovrl"], "dnsmos_sig": q["sig"], "dnsmos_bak": q["bak"],
        "utmos": utmos_value, "speaker_sim": speaker_sim,
        "rate_prompt": rate_p, "rate_cont": rate_c, "rate_diff": abs(rate_c - rate_p) / rate_p,
        "duration_s": len(wav) / SAMPLE_RATE,
    }


@dataclass(frozen=True)
class JudgeScope:
    """Which audio judges one continuation gets. Audible (>= MIN_SAMPLES: DNSMOS and the speaker encoder need
    >= 0.1 s; and not all zeros: resemblyzer's loudness normalisation turns digital silence into NaN samples and a
    meaningless embedding): pocketsphinx and speaker similarity. Rated (audible, and its prompt in quality_prompts or
    quality_prompts None): DNSMOS and UTMOS too."""

    audible: bool
    rated: bool


def judge_scopes(items: Sequence[Continuation], wavs: Sequence[np.ndarray], quality_prompts: set[str] | None
                 ) -> list[JudgeScope]:
    """The JudgeScope of each continuation, in order (wavs: their audio)."""
    scopes = []
    for c, wav in zip(items, wavs, strict=True):
        audible = len(wav) >= MIN_SAMPLES and bool(np.any(np.asarray(wav) != 0))
        scopes.append(JudgeScope(audible, audible and (quality_prompts is None or c.prompt_id in quality_prompts)))
    return scopes


def judge_audible(wav: np.ndarray, rated: bool, prompt_emb: np.ndarray,
                  speaker_embed: Callable[[np.ndarray], np.ndarray], quality: Callable[[np.ndarray], dict],
                  utmos: Callable[[np.ndarray], float] | None) -> tuple[dict, float, float]:
    """(DNSMOS, UTMOS, speaker similarity) of one audible continuation; unrated: NO_QUALITY and NaN UTMOS."""
    from taste.metrics.speaker import cosine

    return (quality(wav) if rated else NO_QUALITY, utmos(wav) if utmos and rated else float("nan"),
            cosine(prompt_emb, speaker_embed(wav)))


def audio_table(items: Sequence[Continuation], wavs: Sequence[np.ndarray], prompts: dict[str, np.ndarray],
                asr_texts: Sequence[str], ps_texts: dict[int, str], scores: dict[int, tuple[dict, float, float]]
                ) -> pd.DataFrame:
    """measure_audio's rows from the judges' outputs, keyed by item index for the audible continuations: ps_texts
    (pocketsphinx) and scores (judge_audible). The others get "", NO_QUALITY, NaN UTMOS and NaN similarity.
    prompts: prompt_wav -> audio."""
    missing = (NO_QUALITY, float("nan"), float("nan"))
    return pd.DataFrame([audio_row(c, wav, prompts[c.prompt_wav], asr_text, ps_texts.get(i, ""),
                                   *scores.get(i, missing))
                         for i, (c, wav, asr_text) in enumerate(zip(items, wavs, asr_texts, strict=True))])


def measure_audio(items: Sequence[Continuation], read: Callable[[str], np.ndarray],
                  asr: Callable[[list[np.ndarray]], list[str]], recognizer: Callable[[np.ndarray], str],
                  speaker_embed: Callable[[np.ndarray], np.ndarray], quality: Callable[[np.ndarray], dict],
                  utmos: Callable[[np.ndarray], float] | None = None,
                  quality_prompts: set[str] | None = None) -> pd.DataFrame:
    """One row per continuation: transcripts (study ASR, pocketsphinx), DNSMOS, speaker similarity, rates.

    quality_prompts: prompt ids whose continuations get DNSMOS/UTMOS (None = all; see JudgeScope); DNSMOS tiles
    every clip to its 9 s window, so it costs about one second per clip on a CPU core and is run on a paired
    subset."""
    wavs = [read(c.wav) for c in items]
    prompts = {c.prompt_wav: read(c.prompt_wav) for c in items}
    prompt_emb = {p: speaker_embed(w) for p, w in prompts.items()}
    asr_texts = asr(wavs)
    ps_texts, scores = {}, {}
    for i, (c, wav, scope) in enumerate(zip(items, wavs, judge_scopes(items, wavs, quality_prompts))):
        if scope.audible:
            ps_texts[i] = recognizer(wav)
            scores[i] = judge_audible(wav, scope.rated, prompt_emb[c.prompt_wav], speaker_embed, quality, utmos)
    return audio_table(items, wavs, prompts, asr_texts, ps_texts, scores)


def judge_floor(refs: Sequence[str], wavs: Sequence[np.ndarray],
                transcribers: dict[str, Callable[[list[np.ndarray]], list[str]]], n_boot: int = 1000,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """Each judge's WER on original speech (`wavs` with their true `refs`): the floor its table reads against.

    -> {judge: {"value", "ci_lo", "ci_hi", "n"}}, the mean of per-utterance WERs with a bootstrap CI over utterances."""
    from taste.metrics.stats import summarise as summarise_values
    from taste.metrics.wer import per_utterance_wer

    if len(refs) != len(wavs):
        raise ValueError(f"judge_floor: {len(refs)} transcripts for {len(wavs)} recordings")
    if not refs:
        return {name: summarise_values([], np.mean) for name in transcribers}
    return {name: summarise_values(per_utterance_wer(list(refs), fn(list(wavs))), np.mean, n=n_boot, seed=seed)
            for name, fn in transcribers.items()}


def asr_transcriber(asr_dir: str | Path, mel_cfg, batch_size: int = 16) -> Callable[[list[np.ndarray]], list[str]]:
    """The study's Whisper as wavs -> transcripts; audio longer than the encoder window is cut to it (the first
    seconds decide coherence anyway) and audio shorter than one hop is transcribed as ''."""
    import torch

    from taste.asr.bpe import load_bpe
    from taste.asr.whisper import load_asr, transcribe
    from taste.data.features import log_mel

    model, tok = load_asr(asr_dir), load_bpe(asr_dir)
    window = 2 * int(model.config.max_source_positions)

    def run(wavs: list[np.ndarray]) -> list[str]:
        keep = [i for i, w in enumerate(wavs) if len(w) >= 2 * mel_cfg.hop_length]
        mels = [log_mel(wavs[i], mel_cfg)[:, :window] for i in keep]
        order = sorted(range(len(mels)), key=lambda j: mels[j].shape[-1])  # similar lengths batch together
        texts = [""] * len(wavs)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            lengths = torch.tensor([mels[j].shape[-1] for j in chunk])
            batch = torch.full((len(chunk), mel_cfg.n_mels, int(lengths.max())), float(np.log(1e-5)))
            for row, j in enumerate(chunk):
                batch[row, :, : mels[j].shape[-1]] = mels[j]
            with torch.no_grad():
                for j, text in zip(chunk, transcribe(model, tok, batch, lengths, batch_size=batch_size)):
                    texts[keep[j]] = text
        return texts

    return run


def add_text_judges(df: pd.DataFrame, encoder, ref_lm, consistency, judge=None, text_column: str = "asr_text",
                    suffix: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Coherence judges on a transcript column, written as `<judge><suffix>` columns. An empty transcript scores 0
    similarity and consistency and the reference LM's uniform-guess log perplexity, so saying nothing is never
    rewarded. The LLM judge runs only when given. Returns (df, judge errors)."""
    from taste.evaluation.coherence import embedding_similarity

    df = df.copy()
    texts = df[text_column].fillna("").tolist()
    df[f"embed_sim{suffix}"] = embedding_similarity(encoder, df["prompt_text"].tolist(), texts)
    uniform = math.log(len(ref_lm.vocab) + 1)
    df[f"ref_logppl{suffix}"] = [math.log(ref_lm.perplexity(t)) if t.strip() else uniform for t in texts]
    scores = [consistency.score(s, t) if isinstance(s, str) and s in consistency.stories else None
              for s, t in zip(df["story_id"], texts)]
    df[f"story_consistency{suffix}"] = [s["story_consistency"] if s else np.nan for s in scores]
    df[f"entity_precision{suffix}"] = [s["entity_precision"] if s else np.nan for s in scores]
    errors: list[str] = []
    if judge is not None:
        df[f"llm_judge{suffix}"], errors = judge.score_all(df["prompt_text"].tolist(), texts)
    elif f"llm_judge{suffix}" not in df:
        df[f"llm_judge{suffix}"] = np.nan
    return df, errors


def skipped_story_judges(consistency, story_ids: Sequence, suffixes: Sequence[str] = ("", "_ps")
                         ) -> dict[str, str]:
    """{judge: reason} for the story-consistency judges that scored nothing (all NaN) for want of story metadata:
    no stories at all, or none of the judged prompts' stories in stories.jsonl. Empty when they ran."""
    from taste.evaluation.coherence import NO_STORY_METADATA

    if not consistency.stories:
        reason = NO_STORY_METADATA
    elif not any(isinstance(s, str) and s in consistency.stories for s in story_ids):
        reason = "no judged prompt has a story in stories.jsonl"
    else:
        return {}
    return {f"story_consistency{suffix}": reason for suffix in suffixes}


# ---------------------------------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------------------------------
def summarise(df: pd.DataFrame, judges: Sequence[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean and 95% bootstrap CI per (system, judge), NaNs dropped -> DataFrame(system, judge, mean, lo, hi, n)."""
    from taste.metrics.stats import bootstrap_ci

    rows = []
    for system, group in df.groupby("system", sort=False):
        for judge in judges:
            if judge not in group:
                continue
            values = group[judge].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            lo, hi = bootstrap_ci(values, n=n_boot, seed=seed) if values.size > 1 else (values[0], values[0])
            rows.append({"system": system, "judge": judge, "mean": float(values.mean()), "lo": lo, "hi": hi,
                         "n": int(values.size)})
    return pd.DataFrame(rows, columns=["system", "judge", "mean", "lo", "hi", "n"])


def _value(summary: pd.DataFrame, system: str, judge: str) -> float:
    hit = summary[(summary["system"] == system) & (summary["judge"] == judge)]
    return float(hit["mean"].iloc[0]) if len(hit) else float("nan")


def ordering_ratios(summary: pd.DataFrame, judges: Sequence[str] = COHERENCE_JUDGES) -> dict[str, float]:
    """TASLM / cascade and TASLM / S3 for each coherence judge, oriented so that > 1 means TASLM is better.

    Log perplexity is turned back into perplexity first (ratio of perplexities, inverted). UNPAIRED ratio of the
    per-system means, without a CI: the report uses `paired_ordering` (paired over prompts, 95% CIs)."""
    out = {}
    for judge in judges:
        higher = JUDGES[judge][1]
        for taslm in ("taslm_token", "taslm_embed"):
            for other in ("cascade", "s3_lm"):
                a, b = _value(summary, taslm, judge), _value(summary, other, judge)
                if judge.startswith("ref_logppl"):
                    a, b = math.exp(a), math.exp(b)
                ratio = (a / b if higher else b / a) if b and a else float("nan")
                out[f"{judge}.{taslm}_over_{other}"] = ratio
    return out


RATIO_PAIRS = (("taslm_token", "cascade"), ("taslm_token", "s3_lm"), ("taslm_embed", "cascade"),
               ("taslm_embed", "s3_lm"), ("cascade", "s3_lm"))


def _oriented_ratio(a: np.ndarray, b: np.ndarray, judge: str, axis: int = -1) -> np.ndarray:
    """mean(a) / mean(b) along `axis`, oriented so > 1 means a is better; log perplexities become perplexities."""
    ma, mb = np.mean(a, axis=axis), np.mean(b, axis=axis)
    if judge.startswith("ref_logppl"):
        ma, mb = np.exp(ma), np.exp(mb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ma / mb if JUDGES[judge][1] else mb / ma


def ground_truth_text_share(items: Sequence[Continuation]) -> dict[str, float]:
    """Per system, the share of prompts whose text fell back to the ground-truth transcript (the ASR heard nothing
    plausible): those rows were given the true prompt text, an oracle input."""
    out: dict[str, list[bool]] = {}
    for c in items:
        out.setdefault(c.system, []).append(c.prompt_text_source.startswith("ground_truth"))
    return {s: float(np.mean(v)) for s, v in out.items()}


def paired_ratios(df: pd.DataFrame, judges: Sequence[str], n_boot: int = 1000, seed: int = 0,
                  pairs: Sequence[tuple[str, str]] = RATIO_PAIRS) -> dict[str, dict[str, float]]:
    """System comparisons as paired ratios over prompts: for each judge and (a, b) in `pairs`, the ratio of a's mean
    to b's over the prompts both were judged on, with a 95% percentile CI from resampling PROMPTS (both systems'
    values of one prompt stay together; scipy.stats.bootstrap, paired). > 1 means a is better.

    -> {"<judge>.<a>_over_<b>": {"value", "ci_lo", "ci_hi", "n"}}"""
    from scipy.stats import DegenerateDataWarning, bootstrap

    out = {}
    for judge in judges:
        if judge not in df:
            continue
        wide = df.pivot_table(index="prompt_id", columns="system", values=judge, aggfunc="mean")
        for a, b in pairs:
            if a not in wide or b not in wide:
                continue
            both = wide[[a, b]].dropna()
            if len(both) < 2:
                continue
            xa, xb = both[a].to_numpy(float), both[b].to_numpy(float)
            value = float(_oriented_ratio(xa, xb, judge))
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateDataWarning)  # zero denominators: handled below
                res = bootstrap((xa, xb), lambda u, v, axis=-1: _oriented_ratio(u, v, judge, axis), paired=True,
                                vectorized=True, n_resamples=n_boot, method="percentile",
                                rng=np.random.default_rng(seed))
            lo, hi = res.confidence_interval
            entry = {"value": value, "ci_lo": float(lo), "ci_hi": float(hi), "n": int(len(both))}
            zero = int((~np.isfinite(res.bootstrap_distribution)).sum())
            if zero or not np.isfinite(value):
                # A zero mean in the denominator (e.g. a 0/1 judge that no prompt of b passes): x / 0 is unbounded,
                # 0 / 0 undefined. JSON gets null for such a number and its name under "non_finite" ("inf", "-inf",
                # "nan"; _point and _ci read it back), never NaN or Infinity.
                non_finite = {k: str(entry[k]) for k in ("value", "ci_lo", "ci_hi") if not np.isfinite(entry[k])}
                entry.update({k: None for k in non_finite}, non_finite=non_finite,
                             undefined=f"{zero} of {n_boot} resamples have a zero mean in the denominator")
            out[f"{judge}.{a}_over_{b}"] = entry
    return out


ORDERING_PAIRS = (("taslm_token", "cascade"), ("taslm_token", "s3_lm"), ("taslm_embed", "cascade"),
                  ("taslm_embed", "s3_lm"))


def paired_ordering(df: pd.DataFrame, judges: Sequence[str] = COHERENCE_JUDGES, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """The ordering checks (TASLM / cascade and TASLM / S3 per coherence judge, > 1 = TASLM better) as PAIRED
    ratios over the prompts both systems were judged on, with 95% CIs resampling prompts (paired_ratios).

    -> {"<judge>.<taslm>_over_<other>": {"value", "ci_lo", "ci_hi", "n"}}: the keys of ordering_ratios."""
    return paired_ratios(df, judges, n_boot=n_boot, seed=seed, pairs=ORDERING_PAIRS)


def _number(v: dict, key: str) -> float:
    """An entry of paired_ratios as a float: its JSON null read back as the inf / nan it stands for."""
    return float(v["non_finite"][key]) if v[key] is None else float(v[key])


def _point(v) -> float:
    return _number(v, "value") if isinstance(v, dict) else float(v)


def _ci(v) -> tuple[float, float]:
    if not isinstance(v, dict):
        return float("nan"), float("nan")
    return _number(v, "ci_lo"), _number(v, "ci_hi")


def ordering_verdict(ordering: dict, close: float = 0.9, above: float = 1.5) -> pd.DataFrame:
    """Per coherence judge and TASLM variant: is TASLM within 10% of the cascade (ratio >= close) and at least
    `above` x the S3-unit LM? ordering: paired_ordering's entries (or plain ratios) ->
    DataFrame(judge, variant, vs_cascade, vs_s3, close_to_cascade, above_s3, vs_cascade_lo/hi, vs_s3_lo/hi,
    close_to_cascade_ci, above_s3_ci). The `_ci` verdicts hold only when the whole 95% CI clears the bar."""
    rows = []
    for key, value in ordering.items():
        judge, pair = key.split(".", 1)
        variant, other = pair.split("_over_")
        if other != "cascade":
            continue
        s3 = ordering.get(f"{judge}.{variant}_over_s3_lm", float("nan"))
        vs_cascade, vs_s3 = _point(value), _point(s3)
        (c_lo, c_hi), (s_lo, s_hi) = _ci(value), _ci(s3)
        rows.append({"judge": judge, "variant": variant, "vs_cascade": vs_cascade, "vs_s3": vs_s3,
                     "close_to_cascade": bool(vs_cascade >= close), "above_s3": bool(vs_s3 >= above),
                     "vs_cascade_lo": c_lo, "vs_cascade_hi": c_hi, "vs_s3_lo": s_lo, "vs_s3_hi": s_hi,
                     "close_to_cascade_ci": bool(c_lo >= close), "above_s3_ci": bool(s_lo >= above)})
    return pd.DataFrame(rows, columns=["judge", "variant", "vs_cascade", "vs_s3", "close_to_cascade", "above_s3",
                                       "vs_cascade_lo", "vs_cascade_hi", "vs_s3_lo", "vs_s3_hi",
                                       "close_to_cascade_ci", "above_s3_ci"])


def paper_comparison(summary: pd.DataFrame, study_scale: str) -> pd.DataFrame:
    """Our judges beside the paper's Table 2, one row per system, each study's scale stated."""
    rows = []
    for system in SYSTEMS:
        paper = PAPER_TABLE2[system]
        rows.append({
            "system": system, "paper_system": paper["paper_system"],
            "paper_gpt4o": paper["gpt4o"], "paper_utmos": paper["utmos"], "paper_human_mos": paper["human_mos"],
            **{f"ours_{j}": _value(summary, system, j) for j in ("llm_judge", "embed_sim", "ref_logppl",
                                                                   "story_consistency", "dnsmos_ovrl", "utmos")},
            "paper_scale": PAPER_SCALE, "our_scale": study_scale,
        })
    return pd.DataFrame(rows)


def headline_metrics(summary: pd.DataFrame, probes: dict[str, dict[str, dict]], ordering: dict,
                     extra: dict | None = None) -> dict:
    """{system: {judge: mean}} plus probe accuracies and ordering ratios: two levels, so `dvc metrics show` prints
    keys like `taslm_embed.embed_sim`. ordering: paired_ordering's entries ({"value", "ci_lo", "ci_hi", "n"}: the
    ratio under its key, the CI under `<key>_ci`) or plain ratios."""
    out: dict[str, dict] = {}
    for _, r in summary.iterrows():
        out.setdefault(r["system"], {})[r["judge"]] = round(float(r["mean"]), 4)
    for system, by_probe in probes.items():
        for probe, res in by_probe.items():
            if np.isfinite(res.get("accuracy", float("nan"))):
                out.setdefault(system, {})[f"probe_{probe}"] = round(float(res["accuracy"]), 4)
    out["ordering"] = {}
    for k, v in ordering.items():
        if not np.isfinite(_point(v)):
            continue
        out["ordering"][k] = round(_point(v), 4)
        if isinstance(v, dict):
            lo, hi = _ci(v)
            out["ordering"][f"{k}_ci"] = {"lo": round(lo, 4) if np.isfinite(lo) else None,
                                          "hi": round(hi, 4) if np.isfinite(hi) else None, "n": int(v.get("n", 0))}
    if extra:
        out["run"] = extra
    return out


def write_metrics(metrics: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path
