"""CLI of the data part: `taste download` (a real-corpus subset, apart from preparation) and `taste prepare`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _download(args: argparse.Namespace) -> int:
    from taste.config import load_params
    from taste.data.download import DownloadError, download_subset

    params = load_params(args.params)
    name = args.name or f"{params['data']['source']}/{params['data']['real']['subset']}"
    url = args.url or params["data"]["real"].get("download_url")
    try:
        out = download_subset(name, args.dest, url=url, sha256=args.sha256)
    except DownloadError as e:
        raise SystemExit(f"taste download: {e}")
    print(f"{name} is in {out}; set data.root to the unpacked subset folder and data.source accordingly")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from taste.config import load_params, set_threads
    from taste.data.prepare import prepare

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    paths = params["shared"]["paths"]
    metrics = prepare(params, Path(paths["raw"]), Path(paths["prepared"]))
    print(json.dumps({k: metrics[k] for k in ("utterances", "hours", "n_rejected")}, indent=2))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("download", help="fetch and unpack a LibriSpeech/LibriTTS subset (needs a network)")
    p.add_argument("name", nargs="?", default=None,
                   help="librispeech/<subset> or libritts/<subset> (default: data.source/data.real.subset)")
    p.add_argument("--dest", default="data/downloads")
    p.add_argument("--url", default=None, help="mirror URL or file:// path of the archive")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    p.set_defaults(func=_download)
    p = subparsers.add_parser("prepare", help="validate data/raw and write data/prepared (the notebook's work, no report)")
    p.set_defaults(func=_prepare)
