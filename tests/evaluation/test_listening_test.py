"""Listening-test kit: blind page generation, CSV import, MOS; the page itself is driven in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from taste.evaluation.listening_test import (
    ListeningItem,
    RatingsFileError,
    build_listening_test,
    load_ratings,
    mos_table,
    read_ratings,
)

CHROMIUM = Path("/usr/bin/chromium")
SYSTEMS = ("cascade", "s3_lm", "taslm_token", "taslm_embed")


def _items(tmp_path: Path, n_prompts: int = 3) -> list[ListeningItem]:
    items = []
    for p in range(n_prompts):
        prompt = tmp_path / f"prompt{p}.wav"
        sf.write(prompt, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
        for s in SYSTEMS:
            wav = tmp_path / f"{s}_{p}.wav"
            sf.write(wav, np.full(800, 0.01 * (p + 1), dtype=np.float32), 16000, subtype="PCM_16")
            items.append(ListeningItem(prompt_id=f"p{p}", system=s, prompt_wav=str(prompt), wav=str(wav)))
    return items


def test_page_is_blind_and_complete(tmp_path):
    page = build_listening_test(_items(tmp_path), tmp_path / "kit", seed=3)
    text = page.read_text()
    for system in SYSTEMS:
        assert system not in text, f"system name {system} leaks into the page"
    key = json.loads((tmp_path / "kit" / "key.json").read_text())
    assert len(key) == 3 * len(SYSTEMS)
    assert sorted({v["system"] for v in key.values()}) == sorted(SYSTEMS)
    for sample in key:
        assert (tmp_path / "kit" / "audio" / f"{sample}.wav").is_file()
    trials = json.loads(re.search(r"const TRIALS = (.*);\n", text).group(1))
    orders = [tuple(key[s["id"]]["system"] for s in t["samples"]) for t in trials]
    assert len(set(orders)) > 1 or len(trials) == 1, "system order is the same in every trial"


def test_missing_audio_names_the_file(tmp_path):
    item = ListeningItem("p0", "cascade", str(tmp_path / "nope.wav"), str(tmp_path / "nope.wav"))
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        build_listening_test([item], tmp_path / "kit")


def test_ratings_to_mos(tmp_path):
    key = {"a": {"system": "x", "prompt_id": "p0", "trial": "t"}, "b": {"system": "y", "prompt_id": "p0", "trial": "t"}}
    csv_text = "rater,trial,sample,rating\nr1,t,a,5\nr1,t,b,1\nr2,t,a,4\nr2,t,b,2\n"
    ratings = read_ratings(csv_text, key)
    table = mos_table(ratings, n_boot=200).set_index("system")
    assert table.loc["x", "mos"] == pytest.approx(4.5) and table.loc["y", "mos"] == pytest.approx(1.5)
    assert table.loc["x", "lo"] <= 4.5 <= table.loc["x", "hi"]
    assert list(table["n"]) == [2, 2]


@pytest.mark.parametrize("csv_text, message", [
    ("who,what\n1,2\n", "expected CSV columns"),
    ("rater,trial,sample,rating\nr,t,zzz,3\n", "not in the key"),
    ("rater,trial,sample,rating\nr,t,a,7\n", "outside 1-5"),
    ("rater,trial,sample,rating\nr,t,a,good\n", "not an integer"),
])
def test_bad_ratings_are_rejected(csv_text, message):
    key = {"a": {"system": "x", "prompt_id": "p0", "trial": "t"}}
    with pytest.raises(RatingsFileError, match=message):
        read_ratings(csv_text, key, "r.csv")


# The driver clicks the real radio buttons and the real export button, as a rater would.
_DRIVER = """<script>
document.getElementById("rater").value = "tester";
const radios = Array.from(document.querySelectorAll("input[type=radio]"));
const names = [...new Set(radios.map((r) => r.name))];
names.forEach((name, i) => {
  const value = String((i % 5) + 1);
  radios.find((r) => r.name === name && r.value === value).click();
});
document.getElementById("export").click();
</script>
</body>"""


def _dump_dom(cmd: list[str], timeout: float) -> str:
    """Run headless Chromium and return the dumped DOM.

    Chromium sometimes stays alive after printing the DOM (seen in CI: dbus retries), so the page counts as dumped as
    soon as ``</html>`` arrives; the browser is then killed rather than waited for.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    chunks: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        for line in iter(proc.stdout.readline, b""):
            chunks.append(line)
            if b"</html>" in line:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    proc.kill()
    proc.wait()
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.browser
def test_page_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium missing): apt-get install -y chromium")
    kit = tmp_path / "kit"
    page = build_listening_test(_items(tmp_path), kit, seed=1)
    driven = kit / "driven.html"
    driven.write_text(page.read_text().replace("</body>", _DRIVER))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", driven.as_uri()]
    dom = _dump_dom(cmd, timeout=90)
    found = re.search(r'<textarea id="csv" readonly="">(.*?)</textarea>', dom, re.S)
    assert found, f"no exported CSV in the page: {dom[-500:]}"
    csv_text = html.unescape(found.group(1))
    (tmp_path / "ratings.csv").write_text(csv_text)
    ratings = load_ratings([tmp_path / "ratings.csv"], kit / "key.json")
    assert len(ratings) == 3 * len(SYSTEMS), "every rated sample is exported once"
    assert set(ratings["rater"]) == {"tester"}
    assert sorted(set(ratings["rating"])) == [1, 2, 3, 4, 5]
    assert set(ratings["system"]) == set(SYSTEMS)
    assert "12 of 12 rated" in dom


def test_cli_build_and_score(tmp_path, capsys):
    import argparse

    from taste.evaluation.commands import register

    items = _items(tmp_path, n_prompts=2)
    for system in SYSTEMS:
        rows = [{"prompt_id": i.prompt_id, "story_id": None, "prompt_text": "a", "prompt_wav": i.prompt_wav,
                 "continuation_text": "b", "wav": i.wav} for i in items if i.system == system]
        (tmp_path / "cont" / system).mkdir(parents=True)
        (tmp_path / "cont" / system / "continuations.jsonl").write_text("\n".join(map(json.dumps, rows)))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    kit = tmp_path / "kit"
    args = parser.parse_args(["listening-test", "build", "--continuations", str(tmp_path / "cont"), "-o", str(kit)])
    assert args.func(args) == 0
    key = json.loads((kit / "key.json").read_text())
    lines = ["rater,trial,sample,rating"] + [f"r,{v['trial']},{s},{5 if v['system'] == 'cascade' else 2}"
                                             for s, v in key.items()]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    args = parser.parse_args(["listening-test", "score", str(tmp_path / "r.csv"), "--key", str(kit / "key.json"),
                              "--bootstrap", "50", "-o", str(tmp_path / "mos.csv")])
    assert args.func(args) == 0
    assert "cascade" in capsys.readouterr().out
    mos = pd.read_csv(tmp_path / "mos.csv").set_index("system")
    assert mos.loc["cascade", "mos"] == 5.0 and mos.loc["s3_lm", "mos"] == 2.0
