"""Assemble the reconstruction table from trained models: one row per system, every row measured identically."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from taste.tokenizer.data import TasteItem
from taste.tokenizer.evaluate import (AudioJudges, bitrate, boundary_durations, boundary_durations_by_utterance,
                                      consistency_with_ci, judge_audio, reconstruct, summarise_audio,
                                      teacher_forced_accuracy)
from taste.tokenizer.model import DecodeResult, TasteTokenizer


@dataclass(frozen=True)
class ModelRow:
    """A table row produced by a tokenizer: `n_layers` RVQ layers (None = all / not quantised)."""

    name: str
    model: TasteTokenizer
    n_layers: int | None
    items: Sequence[TasteItem]   # the eval items as this model sees them (ablation: last-layer values)
    source: str = ""             # the key of `model` in model_rows' models (its saved folder, for the parallel path)


def model_rows(models: Mapping[str, TasteTokenizer], items: Sequence[TasteItem], ablation_items: Sequence[TasteItem],
               other_mode: str) -> list[ModelRow]:
    """The model rows in table order. models: text_only, no_vq, rvq, other_mode, last_layer_values,
    other_duration_feature (missing ones skipped)."""
    rows = []
    if "text_only" in models:
        rows.append(ModelRow("text_only", models["text_only"], None, items, "text_only"))
    if "no_vq" in models:
        rows.append(ModelRow("taste_no_vq", models["no_vq"], None, items, "no_vq"))
    if "rvq" in models:
        n_q = models["rvq"].cfg.rvq.n_quantizers
        for k in sorted({1, 2, n_q} & set(range(1, n_q + 1))):
            rows.append(ModelRow(f"taste_rvq{k}", models["rvq"], k, items, "rvq"))
    if "other_mode" in models:
        m = models["other_mode"]
        rows.append(ModelRow(f"taste_rvq{m.cfg.rvq.n_quantizers}_{other_mode}", m, None, items, "other_mode"))
    if "last_layer_values" in models:
        m = models["last_layer_values"]
        rows.append(ModelRow(f"taste_rvq{m.cfg.rvq.n_quantizers}_last_layer_values", m, None, ablation_items,
                             "last_layer_values"))
    if "other_duration_feature" in models:
        m = models["other_duration_feature"]
        rows.append(ModelRow(f"taste_rvq{m.cfg.rvq.n_quantizers}_duration_{m.cfg.aggregator.duration_feature}", m,
                             None, items, "other_duration_feature"))
    return rows


def words_per_second(items: Sequence[TasteItem], rate_hz: float) -> float:
    return sum(it.n_words for it in items) / max(sum(len(it.units) for it in items) / rate_hz, 1e-9)


def model_row_measures(row: ModelRow, n_boot: int, seed: int, rate_hz: float) -> tuple[dict, list]:
    """Rate, bitrate, teacher-forced accuracy, generated-boundary duration consistency; returns the decodes too."""
    m = row.model
    tf = teacher_forced_accuracy(m, row.items, n_layers=row.n_layers)
    results = reconstruct(m, row.items, n_layers=row.n_layers, seed=seed)
    wps = words_per_second(row.items, rate_hz)
    layers = 0 if m.stage == "text_only" else (row.n_layers or m.cfg.rvq.n_quantizers)
    bps = math.nan if m.stage == "no_vq" else bitrate(wps, layers, m.cfg.rvq.codebook_size)
    out = {"system": row.name, "frame_rate_hz": wps, "bitrate_bps": bps,
           "tf_top1": float(tf["top1"].mean()), "tf_top5": float(tf["top5"].mean())}
    if m.cfg.conditioning == "word_sync":
        ref, hyp, utts = boundary_durations_by_utterance(row.items, results, rate_hz)
        out.update({f"gen_{k}": v for k, v in consistency_with_ci(ref, hyp, n_boot, seed, utts).items()})
    return out, results


def measure_rows(rows: Sequence[ModelRow], n_boot: int, seed: int,
                 rate_hz: float) -> tuple[list[dict], dict[str, list[DecodeResult]]]:
    """model_row_measures of every row, in this process: (measures in table order, {row name: decodes})."""
    measures, decodes = [], {}
    for row in rows:
        m, decodes[row.name] = model_row_measures(row, n_boot, seed, rate_hz)
        measures.append(m)
    return measures, decodes


def row_cost(row: ModelRow) -> float:
    """Expected relative cost of measuring a row: decoding dominates, ~ trainable weights x tokens to generate."""
    return float(sum(p.numel() for p in row.model.parameters())) * sum(len(it.units) + it.n_words for it in row.items)


def balance(costs: Sequence[float], workers: int) -> list[list[int]]:
    """Greedy longest-first assignment of jobs to the least-loaded of `workers` groups; each group in input order,
    empty groups dropped."""
    groups: list[list[int]] = [[] for _ in range(max(1, workers))]
    load = [0.0] * len(groups)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        j = min(range(len(groups)), key=lambda j: load[j])
        groups[j].append(i)
        load[j] += costs[i]
    return [sorted(g) for g in groups if g]


def _measure_rows_job(job: tuple) -> list[tuple[str, dict, list[DecodeResult]]]:
    """Worker (1 thread): load each model and item file once, measure a group of rows."""
    from taste.config import set_threads
    from taste.tokenizer.data import load_items

    specs, n_boot, seed, rate_hz = job
    set_threads(1)
    models: dict[str, TasteTokenizer] = {}
    items: dict[str, list[TasteItem]] = {}
    out = []
    for name, folder, n_layers, item_file in specs:
        if folder not in models:
            models[folder] = TasteTokenizer.from_pretrained(folder)
        if item_file not in items:
            items[item_file] = load_items(item_file)
        row = ModelRow(name, models[folder], n_layers, items[item_file])
        out.append((name, *model_row_measures(row, n_boot, seed, rate_hz)))
    return out


def measure_rows_parallel(rows: Sequence[ModelRow], folders: Mapping[str, str | Path], n_boot: int, seed: int,
                          rate_hz: float, workers: int = 2) -> tuple[list[dict], dict[str, list[DecodeResult]]]:
    """measure_rows with the rows spread over `workers` 1-thread spawn processes, balanced by row_cost (decoding
    small models gains little from a second thread; two processes use both cores). folders: row.source -> the
    saved model folder the worker loads (TasteTokenizer.from_pretrained); the rows' items reach the workers through
    save_items files in a temporary folder. Each item samples from its own seeded generator, so a row decodes as
    it does in measure_rows at 1 thread."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from taste.tokenizer.data import save_items

    missing = sorted({r.source for r in rows} - set(folders))
    if missing:
        raise ValueError(f"measure_rows_parallel: no saved folder for the rows' models {missing}")
    with tempfile.TemporaryDirectory(prefix="taste_rows_") as tmp:
        item_files: dict[int, str] = {}
        for row in rows:  # one file per distinct item list (the main items, the last-layer-values items)
            if id(row.items) not in item_files:
                item_files[id(row.items)] = str(Path(tmp) / f"items_{len(item_files)}.safetensors")
                save_items(item_files[id(row.items)], row.items)
        specs = [(r.name, str(folders[r.source]), r.n_layers, item_files[id(r.items)]) for r in rows]
        groups = balance([row_cost(r) for r in rows], workers)
        jobs = [([specs[i] for i in g], n_boot, seed, rate_hz) for g in groups]
        with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
            done = {name: (m, d) for part in pool.map(_measure_rows_job, jobs) for name, m, d in part}
    return [done[r.name][0] for r in rows], {r.name: done[r.name][1] for r in rows}


def audio_rows(row_wavs: Mapping[str, Sequence[np.ndarray]], ids: Sequence[str], texts: Sequence[str],
               ref_durations: Sequence[Sequence[float]], ref_speakers: Sequence[np.ndarray], judges: AudioJudges,
               progress: Callable[[str], None] = print) -> pd.DataFrame:
    """Judge every row's waveforms with the same instruments -> per-utterance frame."""
    frames = []
    for name, wavs in row_wavs.items():
        progress(f"judging {name} ({len(wavs)} utterances)")
        frames.append(judge_audio(name, ids, texts, wavs, ref_durations, ref_speakers, judges))
    return pd.concat(frames, ignore_index=True)


def assemble(model_measures: Sequence[dict], audio_summary: pd.DataFrame, fixed_rows: Mapping[str, dict]) -> pd.DataFrame:
    """Join the model measures, the audio measures and the fixed (topline) rows into one table, in row order."""
    table = pd.DataFrame([{"system": k, **v} for k, v in fixed_rows.items()] + list(model_measures)).set_index("system")
    table = table.join(audio_summary, how="outer")
    order = list(fixed_rows) + [m["system"] for m in model_measures]
    return table.loc[[o for o in order if o in table.index]]


def tidy_for_plot(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Long format (system, metric, value, lo, hi) of the chosen metrics for a seaborn grid."""
    rows = []
    for system, r in table.iterrows():
        for m in metrics:
            if m in table.columns and not pd.isna(r[m]):
                rows.append({"system": system, "metric": m, "value": float(r[m]),
                             "lo": float(r.get(f"{m}_lo", np.nan)), "hi": float(r.get(f"{m}_hi", np.nan))})
    return pd.DataFrame(rows)


def _judge_rows(job: tuple) -> pd.DataFrame:
    """Worker: build the instruments once (1 thread) and judge a group of rows."""
    import torch

    from taste.tokenizer.evaluate import default_audio_judges

    rows, ids, texts, ref_durations, ref_speakers, corpus = job
    torch.set_num_threads(1)
    judges = default_audio_judges(corpus, scored_sentences=texts)
    return pd.concat([judge_audio(name, ids, texts, wavs, ref_durations, ref_speakers, judges) for name, wavs in rows],
                     ignore_index=True)


def audio_rows_parallel(row_wavs: Mapping[str, Sequence[np.ndarray]], ids: Sequence[str], texts: Sequence[str],
                        ref_durations: Sequence[Sequence[float]], ref_speakers: Sequence[np.ndarray],
                        corpus_sentences: Sequence[str], workers: int = 2) -> pd.DataFrame:
    """audio_rows with the default instruments, rows spread over `workers` 1-thread processes
    (pocketsphinx is single-threaded, so two processes use both cores). The scored sentences are `texts`:
    JudgeLeakError (before any worker starts) when one of them is in `corpus_sentences`."""
    from taste.metrics.recognizer import judge_in_processes

    names = list(row_wavs)
    groups = [g for g in (names[i::workers] for i in range(workers)) if g]
    jobs = [([(n, list(row_wavs[n])) for n in g], list(ids), list(texts), [list(d) for d in ref_durations],
             [np.asarray(s) for s in ref_speakers], list(corpus_sentences)) for g in groups]
    frames = judge_in_processes(_judge_rows, jobs, corpus_sentences, texts)
    out = pd.concat(frames, ignore_index=True)
    out["_order"] = out["system"].map({n: i for i, n in enumerate(names)})
    return out.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
