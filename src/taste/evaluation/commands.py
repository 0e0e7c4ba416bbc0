"""CLI of the evaluation stage: `taste review` and `taste listening-test {build,score}`."""

from __future__ import annotations

import argparse
from pathlib import Path


def _review(args: argparse.Namespace) -> int:
    from taste.evaluation.reviewer import run_review

    return run_review(args)


def _listening_build(args: argparse.Namespace) -> int:
    import tempfile

    from taste.data.audio_io import read_audio
    from taste.evaluation.listening_test import ListeningItem, build_listening_test
    from taste.evaluation.report import cut_prompts, read_continuations

    rows, root = [], Path(args.continuations)
    for system in args.systems:
        rows += read_continuations(root / system / "continuations.jsonl", system)
    prompts = set(sorted({c.prompt_id for c in rows})[: args.prompts])
    with tempfile.TemporaryDirectory() as tmp:
        # Raters hear the prompt exactly as the systems did, never the rest of the source utterance.
        rows = cut_prompts([c for c in rows if c.prompt_id in prompts], lambda p: read_audio(p, 16000), tmp)
        items = [ListeningItem(c.prompt_id, c.system, c.prompt_wav, c.wav) for c in rows]
        page = build_listening_test(items, args.out, seed=args.seed)
    print(f"listening test: {page} ({len(prompts)} trials x {len(args.systems)} systems); key: {Path(args.out) / 'key.json'}")
    return 0


def _listening_score(args: argparse.Namespace) -> int:
    from taste.evaluation.listening_test import load_ratings, mos_table

    table = mos_table(load_ratings(args.ratings, args.key), n_boot=args.bootstrap, seed=0)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


def register(subparsers) -> None:
    from taste.evaluation.report import SYSTEMS
    from taste.evaluation.reviewer import build_parser

    p = subparsers.add_parser("review", help="rerun the study in a clean copy and compare every headline metric")
    build_parser(p)
    p.set_defaults(func=_review)

    p = subparsers.add_parser("listening-test", help="build a blind HTML listening test, or score its ratings")
    sub = p.add_subparsers(dest="listening_command", required=True)
    b = sub.add_parser("build", help="write index.html + audio + key.json from the systems' continuations")
    b.add_argument("--continuations", default="outputs/continuations")
    b.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    b.add_argument("--prompts", type=int, default=20, help="number of trials (prompts)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("-o", "--out", default="outputs/evaluate/listening_test")
    b.set_defaults(func=_listening_build)
    s = sub.add_parser("score", help="ratings CSV files -> MOS per system with 95% bootstrap CIs")
    s.add_argument("ratings", nargs="+", help="CSV files exported by the page")
    s.add_argument("--key", default="outputs/evaluate/listening_test/key.json")
    s.add_argument("--bootstrap", type=int, default=1000)
    s.add_argument("-o", "--out", default=None, help="write the MOS table as CSV")
    s.set_defaults(func=_listening_score)
