"""Human evaluation kit: a static, blind HTML listening test, and its ratings CSV turned back into MOS with CIs.

The page needs no server: open index.html, rate each continuation 1-5, press "Export ratings" (downloads a CSV and
fills a text box that can be copied). Sample names are hashes; the system behind each lives only in key.json.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CSV_FIELDS = ("rater", "trial", "sample", "rating")

INSTRUCTIONS = (
    "Each trial starts with a spoken prompt, the beginning of a short story. Below it are several continuations, "
    "in random order. Listen to the prompt, then to each continuation, and rate how natural and how fitting the "
    "continuation is as the next part of the story: 1 = bad, 2 = poor, 3 = fair, 4 = good, 5 = excellent. "
    "Use headphones in a quiet room. When every continuation is rated, press Export ratings and send the CSV file "
    "(or the text in the box) back."
)


class ListeningTestError(ValueError):
    """A listening test that cannot be built from what it was given."""


class RatingsFileError(ValueError):
    """A ratings CSV or the key file is malformed."""


@dataclass(frozen=True)
class ListeningItem:
    """One continuation to rate: the prompt it continues and the system that made it."""

    prompt_id: str
    system: str
    prompt_wav: str
    wav: str


def _token(seed: int, *parts: str) -> str:
    return hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).hexdigest()[:12]


def _copy(src: str | Path, out_dir: Path, name: str) -> str:
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"listening-test audio not found: {src}")
    shutil.copyfile(src, out_dir / "audio" / name)
    return f"audio/{name}"


def build_trials(items: Sequence[ListeningItem], out_dir: Path, seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Copy audio under blind names; returns the page's trials (shuffled) and the key (sample -> system, prompt)."""
    by_prompt: dict[str, list[ListeningItem]] = {}
    for item in items:
        by_prompt.setdefault(item.prompt_id, []).append(item)
    rng = random.Random(seed)
    trials, key = [], {}
    for prompt_id in sorted(by_prompt):
        group = list(by_prompt[prompt_id])
        rng.shuffle(group)  # the order of systems differs from trial to trial
        trial = _token(seed, "trial", prompt_id)
        samples = []
        for item in group:
            sample = _token(seed, "sample", prompt_id, item.system)
            samples.append({"id": sample, "src": _copy(item.wav, out_dir, f"{sample}.wav")})
            key[sample] = {"system": item.system, "prompt_id": prompt_id, "trial": trial}
        prompt_src = _copy(group[0].prompt_wav, out_dir, f"p_{trial}.wav")
        trials.append({"id": trial, "prompt": prompt_src, "samples": samples})
    rng.shuffle(trials)
    return trials, key


def build_listening_test(items: Sequence[ListeningItem], out_dir: str | Path, seed: int = 0,
                         title: str = "Story continuation listening test") -> Path:
    """Write out_dir/index.html, out_dir/audio/*.wav and out_dir/key.json (keep the key away from raters)."""
    if not items:
        raise ListeningTestError("no items for the listening test")
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    trials, key = build_trials(items, out_dir, seed)
    (out_dir / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True))
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__INSTRUCTIONS__", html.escape(INSTRUCTIONS))
    page = page.replace("__TRIALS__", json.dumps(trials).replace("</", "<\\/"))
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Ratings back in
# ---------------------------------------------------------------------------------------------------------------------
def read_ratings(csv_text: str, key: dict[str, dict], source: str = "ratings.csv") -> pd.DataFrame:
    """Parse exported ratings and un-blind them -> DataFrame(rater, trial, sample, rating, system, prompt_id)."""
    rows = list(csv.DictReader(csv_text.strip().splitlines()))
    if not rows or set(CSV_FIELDS) - set(rows[0]):
        raise RatingsFileError(f"{source}: expected CSV columns {CSV_FIELDS}")
    out = []
    for n, row in enumerate(rows, 2):
        sample = row["sample"]
        if sample not in key:
            raise RatingsFileError(f"{source}:{n}: sample {sample!r} is not in the key")
        try:
            rating = int(row["rating"])
        except ValueError as err:
            raise RatingsFileError(f"{source}:{n}: rating {row['rating']!r} is not an integer") from err
        if not 1 <= rating <= 5:
            raise RatingsFileError(f"{source}:{n}: rating {rating} is outside 1-5")
        out.append({**{f: row[f] for f in CSV_FIELDS}, "rating": rating, **key[sample]})
    return pd.DataFrame(out)


def load_ratings(paths: Sequence[str | Path], key_path: str | Path) -> pd.DataFrame:
    key_path = Path(key_path)
    if not key_path.is_file():
        raise FileNotFoundError(f"listening-test key not found: {key_path}")
    key = json.loads(key_path.read_text())
    frames = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"ratings file not found: {p}")
        frames.append(read_ratings(p.read_text(), key, str(p)))
    return pd.concat(frames, ignore_index=True)


def mos_table(ratings: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """MOS per system with a 95% bootstrap CI over ratings -> DataFrame(system, mos, lo, hi, n)."""
    from taste.metrics.stats import bootstrap_ci

    rows = []
    for system, group in ratings.groupby("system", sort=True):
        values = group["rating"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(values, statistic=np.mean, n=n_boot, seed=seed)
        rows.append({"system": system, "mos": float(values.mean()), "lo": float(lo), "hi": float(hi), "n": len(values)})
    return pd.DataFrame(rows)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: sans-serif; max-width: 52em; margin: 2em auto; line-height: 1.4; }
.trial { border: 1px solid #bbb; border-radius: 6px; padding: 1em; margin: 1em 0; }
.sample { margin: 0.6em 0; } .sample label { margin-right: 0.8em; }
#status { font-weight: bold; } textarea { width: 100%; height: 10em; }
</style></head>
<body>
<h1>__TITLE__</h1>
<p id="instructions">__INSTRUCTIONS__</p>
<p>Your name or rater id: <input id="rater" type="text" value=""></p>
<div id="trials"></div>
<p><button id="export" type="button">Export ratings</button> <span id="status"></span></p>
<textarea id="csv" readonly></textarea>
<script>
const TRIALS = __TRIALS__;
const ratings = {};
function render() {
  const root = document.getElementById("trials");
  TRIALS.forEach((trial, t) => {
    const div = document.createElement("div");
    div.className = "trial";
    div.innerHTML = "<h3>Trial " + (t + 1) + " of " + TRIALS.length + "</h3><p>Prompt: <audio controls preload='none' src='" +
      trial.prompt + "'></audio></p>";
    trial.samples.forEach((s, k) => {
      const row = document.createElement("div");
      row.className = "sample";
      let radios = "";
      for (let r = 1; r <= 5; r++) {
        radios += "<label><input type='radio' name='" + s.id + "' value='" + r + "' data-trial='" + trial.id +
          "' data-sample='" + s.id + "'> " + r + "</label>";
      }
      row.innerHTML = "Continuation " + String.fromCharCode(65 + k) + ": <audio controls preload='none' src='" + s.src +
        "'></audio> " + radios;
      div.appendChild(row);
    });
    root.appendChild(div);
  });
  root.addEventListener("change", (e) => {
    const el = e.target;
    if (el.type === "radio") { ratings[el.dataset.sample] = {trial: el.dataset.trial, rating: el.value}; }
  });
}
function toCsv() {
  const rater = (document.getElementById("rater").value || "anonymous").replace(/[",\\n]/g, " ");
  const lines = ["rater,trial,sample,rating"];
  TRIALS.forEach((trial) => trial.samples.forEach((s) => {
    if (ratings[s.id]) { lines.push([rater, trial.id, s.id, ratings[s.id].rating].join(",")); }
  }));
  return lines.join("\\n") + "\\n";
}
function exportRatings() {
  const total = TRIALS.reduce((n, t) => n + t.samples.length, 0);
  const done = Object.keys(ratings).length;
  const csv = toCsv();
  const box = document.getElementById("csv");
  box.value = csv;
  box.textContent = csv;
  document.getElementById("status").textContent = done + " of " + total + " rated" + (done < total ? " (unrated ones are left out)" : "");
  try {
    const url = URL.createObjectURL(new Blob([csv], {type: "text/csv"}));
    const a = document.createElement("a");
    a.href = url; a.download = "ratings.csv"; document.body.appendChild(a); a.click(); a.remove();
  } catch (err) { /* the text box still holds the CSV */ }
}
render();
document.getElementById("export").addEventListener("click", exportRatings);
</script>
</body></html>
"""
