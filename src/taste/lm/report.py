"""Tables from continuation records: LM steps and wall time per second of generated speech, where time goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

PARTS = ("asr_s", "encode_s", "lm_s", "decode_s", "vocoder_s")


def read_records(root: str | Path, systems: Sequence[str]) -> pd.DataFrame:
    """outputs/continuations/<system>/continuations.jsonl of each system -> one flat table (timings expanded)."""
    rows = []
    for system in systems:
        path = Path(root) / system / "continuations.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no continuations for system {system!r}")
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records_frame(rows)


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("timings", "units", "codes")},
                           **{p: r["timings"].get(p, 0.0) for p in (*PARTS, "end_to_end_s")}} for r in records])
    return frame


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per system: mean LM steps, generated seconds, and LM / end-to-end wall time per second of speech.

    Ratios are of sums over prompts (total steps / total generated seconds), so near-empty outputs do not
    dominate.
    """
    g = frame.groupby("system", sort=False)
    sums = g[["lm_steps", "generated_seconds", "n_words", *PARTS, "end_to_end_s"]].sum()
    speech = sums["generated_seconds"].where(sums["generated_seconds"] > 0)  # NaN, not infinity, for silence
    table = pd.DataFrame({
        "prompts": g.size(),
        "words_per_prompt": sums["n_words"] / g.size(),
        "seconds_per_prompt": sums["generated_seconds"] / g.size(),
        "lm_steps_per_prompt": sums["lm_steps"] / g.size(),
        "lm_steps_per_speech_s": sums["lm_steps"] / speech,
        "lm_s_per_speech_s": sums["lm_s"] / speech,
        "end_to_end_s_per_speech_s": sums["end_to_end_s"] / speech,
    })
    for part in PARTS:
        table[f"share_{part[:-2]}"] = sums[part] / sums["end_to_end_s"].clip(lower=1e-9)
    return table


def step_ratio(table: pd.DataFrame, slow: str = "s3_lm", fast: str = "taslm_token") -> float | None:
    """How many more LM steps per second of speech `slow` needs than `fast` (the paper's ~7x at 25 Hz)."""
    if slow not in table.index or fast not in table.index:
        return None
    return float(table.loc[slow, "lm_steps_per_speech_s"] / max(table.loc[fast, "lm_steps_per_speech_s"], 1e-9))
