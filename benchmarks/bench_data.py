"""Data benchmarks: synthesis speed (audio seconds per wall second), and wall time + peak memory of materialise
and prepare at the size params.yaml asks for.

    .venv/bin/python benchmarks/bench_data.py                      # default size (several minutes)
    .venv/bin/python benchmarks/bench_data.py --profile smoke      # seconds
Runs in a temporary folder; nothing under data/ is touched.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from taste.config import deep_merge, load_params, set_threads


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds of this process and its finished children: on a shared machine wall time overstates the cost."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_synthesis(n: int = 40) -> dict:
    """Speak n story sentences with word markup, in-process, and time it."""
    from taste.data.corpus import make_speakers, utterance_job
    from taste.data.storygen import generate_story
    from taste.data.synth import synthesise

    speakers, _ = make_speakers(0, 4, 1, (25, 75))
    sentences = [s for i in range(n) for s in generate_story(0, "bench", i).sentences][:n]
    jobs = [utterance_job(0, f"b{i}", "train", s, speakers[i % 4], (110, 240), (25, 75), 0.25)
            for i, s in enumerate(sentences)]
    t0, audio_s = time.perf_counter(), 0.0
    for job in jobs:
        audio_s += synthesise(job.words, job.markups, job.speaker.voice, job.rate_wpm, job.pitch,
                              dither=3e-4).duration
    wall = time.perf_counter() - t0
    return {"utterances": n, "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "audio_s_per_wall_s": round(audio_s / wall, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default=None, help="overlay profiles/NAME.yaml (e.g. smoke)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.profile:
        params = deep_merge(params, load_params(Path("profiles") / f"{args.profile}.yaml"))
    set_threads(params["shared"]["threads"])
    from taste.data.materialise import materialise
    from taste.data.prepare import prepare

    results = {"profile": args.profile or "default", "synthesis": bench_synthesis()}
    with tempfile.TemporaryDirectory() as tmp:
        raw, prepared = Path(tmp) / "raw", Path(tmp) / "prepared"
        t0, c0 = time.perf_counter(), cpu_s()
        info = materialise(params, raw)
        results["materialise"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu_s() - c0, 1),
                                  "peak_rss_mb": round(peak_rss_mb()),
                                  "hours": info.get("hours"), "utterances": info.get("utterances")}
        t0, c0 = time.perf_counter(), cpu_s()
        metrics = prepare(params, raw, prepared, root=Path("."), progress=False)
        results["prepare"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu_s() - c0, 1),
                              "peak_rss_mb": round(peak_rss_mb()),
                              "rejected": metrics["n_rejected"], "total_hours": metrics["total_hours"]}
        results["prepare"]["hours_per_wall_minute"] = round(60 * metrics["total_hours"] / results["prepare"]["wall_s"], 3)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
