"""Every stage without the synthesiser's knowledge: a plain folder of audio + transcripts (no timings, no stories,
no swap renditions, no markup) runs materialise -> prepare -> ... -> evaluate end to end on the smoke profile.

The folder is made by the test from the project's synthesiser (the smoke profile's synthetic corpus, materialised
in a temporary copy of the repository), keeping only each utterance's audio and its plain-text transcript, one
sub-folder per speaker: every timing, story, rate/pitch value and swap rendition is thrown away.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from study_copy import BIN, copy_repo, run
from taste.config import load_params
from taste.stages import STAGE_NOTEBOOKS

pytestmark = pytest.mark.slow
SPEECH_SPLITS = ("train", "dev", "test")  # the swap renditions are synthesiser knowledge: not in the folder


def make_folder_corpus(work: Path, env: dict[str, str], folder: Path, per_speaker: int = 10) -> int:
    """Materialise the smoke profile's synthetic corpus in `work` and copy its speech (train, dev, test) into
    folder/<speaker>/<id>.wav + <id>.txt: audio and transcript only, at most `per_speaker` utterances per speaker
    (keeps the study small). -> number of utterances copied."""
    run([str(BIN / "taste"), "profile", "apply", "smoke"], work, env)
    run([str(BIN / "taste"), "materialise"], work, env)
    n = 0
    kept: dict[str, int] = {}
    for line in (work / "data" / "raw" / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        u = json.loads(line)
        if u["split"] not in SPEECH_SPLITS or kept.get(u["speaker"], 0) >= per_speaker:
            continue
        kept[u["speaker"]] = kept.get(u["speaker"], 0) + 1
        src = Path(u["audio_path"]) if Path(u["audio_path"]).is_absolute() else work / u["audio_path"]
        dest = folder / u["speaker"] / f"{u['id']}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        dest.with_suffix(".txt").write_text(u["text"] + "\n", encoding="utf-8")
        n += 1
    return n


def build_folder_study(root: Path, sync_notebooks: bool = False) -> tuple[Path, dict[str, str], str, Path]:
    """The folder corpus (made in one copy), then a second copy with the smoke + smoke_folder profiles and
    data.root = the folder: `taste materialise` and `dvc repro`. -> (work, env, repro log, folder).

    sync_notebooks=True re-writes the copy's .ipynb from the notebooks/*.py twins first (jupytext), for running
    this study on notebook edits that are not synced yet."""
    synth_work, folder, work = root / "synth", root / "corpus", root / "study"
    synth_work.mkdir()
    env = copy_repo(synth_work)
    assert make_folder_corpus(synth_work, env, folder) > 0
    shutil.rmtree(synth_work)  # nothing of the synthetic corpus survives but the folder
    work.mkdir()
    env = copy_repo(work)
    if sync_notebooks:
        for py in sorted((work / "notebooks").glob("[0-9]*.py")):
            run([str(BIN / "jupytext"), "--to", "ipynb", "--update", str(py)], work, env)
    run([str(BIN / "taste"), "profile", "apply", "smoke"], work, env)
    run([str(BIN / "taste"), "profile", "apply", "smoke_folder"], work, env)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["root"] = str(folder)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([str(BIN / "taste"), "materialise"], work, env)
    log = run([str(BIN / "dvc"), "repro"], work, env)
    return work, env, log, folder


@pytest.fixture(scope="module")
def folder_study(tmp_path_factory):
    return build_folder_study(tmp_path_factory.mktemp("folder_study"))


def _metrics(work: Path, stage: str) -> dict:
    return json.loads((work / "outputs" / stage / "metrics.json").read_text())


def test_folder_corpus_has_no_synthesiser_knowledge(folder_study):
    work, _, _, folder = folder_study
    assert not list(folder.rglob("*.json*")), "the folder holds audio and transcripts only"
    info = json.loads((work / "data" / "raw" / "corpus_info.json").read_text())
    assert info["source"] == "folder" and info["root"] == str(folder)
    assert (work / "data" / "raw" / "stories.jsonl").read_text() == ""
    for line in (work / "data" / "raw" / "manifest.jsonl").read_text().splitlines():
        u = json.loads(line)
        assert u["split"] in SPEECH_SPLITS
        assert not u.get("words") and not u.get("phones") and u.get("pair") is None and u.get("story_id") is None
        assert u.get("rate_wpm") is None and u.get("pitch") is None


def test_every_stage_ran_and_reported(folder_study):
    work, _, log, _ = folder_study
    params = load_params(work / "params.yaml")
    assert params["profile"] == "smoke_folder" and params["data"]["source"] == "folder"
    for stage, notebook in STAGE_NOTEBOOKS.items():
        assert f"Running stage '{stage}'" in log, f"{stage} did not run"
        out = work / "outputs" / stage
        assert (out / f"{notebook}.ipynb").exists(), f"{stage}: executed notebook missing"
        assert json.loads((out / "stage_time.json").read_text())["wall_time_s"] > 0
        assert _metrics(work, stage), f"{stage}: empty metrics"


def test_prepare_gives_forced_alignment_timings(folder_study):
    """The folder had no timings: prepare force-aligns every kept utterance and marks where its timings came from."""
    work, _, _, _ = folder_study
    prepared = work / "data" / "prepared"
    n = 0
    for split in SPEECH_SPLITS:
        for line in (prepared / f"{split}.jsonl").read_text().splitlines():
            u = json.loads(line)
            n += 1
            assert u.get("words"), f"{u['id']}: no word timings after prepare"
            assert len(u["words"]) == len(u["text"].split())
            assert u.get("timing_source") == "forced_alignment", u.get("timing_source")
    assert n > 0
    for split in ("swap_global", "swap_local"):
        path = prepared / f"{split}.jsonl"
        assert not path.exists() or path.read_text().strip() == ""


def test_swap_runs_edited_sets_and_states_the_skip(folder_study):
    work, _, _, _ = folder_study
    m = _metrics(work, "swap")
    assert "data.source=folder" in m["skipped"]["synthetic_pairs"]
    assert m["edited_pairs"]["n_directed_pairs"] > 0 and m["edited_pairs"]["n_recordings"] > 0
    assert m["edited_dev_pairs"]["n_directed_pairs"] > 0
    assert "slope_edited" in m and "slope_edited_dev" in m
    assert (work / "outputs" / "swap" / "edited_audio").is_dir()


def test_evaluate_states_skipped_story_judges(folder_study):
    work, _, _, _ = folder_study
    m = _metrics(work, "evaluate")
    skipped = m["skipped"]
    for judge in ("story_consistency", "story_consistency_ps", "probe_storycloze"):
        assert judge in skipped and skipped[judge], f"{judge} not stated as skipped: {skipped}"
    for probe in ("probe_consistency_rate", "probe_consistency_pitch"):  # they splice two renditions of a sentence
        assert "data.source=folder" in skipped[probe], skipped
    assert json.loads((work / "outputs" / "taslm" / "metrics.json").read_text())["continuation"]["prompts"] > 0
