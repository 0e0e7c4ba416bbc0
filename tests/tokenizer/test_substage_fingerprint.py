"""The tokenizer's sub-stages skip / resume only a run with the same config and fingerprint."""

import dataclasses
from pathlib import Path

import pytest

from tk_fake_world import build_fake_world

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("world")
    params = build_fake_world(root, REPO / "params.yaml")
    old = os.getcwd()
    os.chdir(root)
    yield root, params
    os.chdir(old)


def test_finished_substage_is_not_reused_under_other_settings(world):
    from taste.tokenizer import pipeline as P
    from taste.tokenizer.train import StageSteps, train_all
    from taste.training.loop import ResumeMismatchError

    root, params = world
    paths = P.stage_paths(params)
    model = P.build_model(params, paths)
    items = P.split_items(model, params, paths, "train")
    base, out = P.substage_train_config(params), root / "substages"
    steps = StageSteps(2, 2, 0)
    infos = train_all(model, items, steps, base, out)
    assert [i["stage"] for i in infos] == ["text_only", "no_vq"] and not any(i.get("skipped") for i in infos)

    same = train_all(P.build_model(params, paths), items, steps, base, out)
    assert all(i.get("skipped") for i in same)  # same settings: finished sub-stages are reused

    with pytest.raises(ResumeMismatchError, match=r"text_only.*config\.lr"):
        train_all(P.build_model(params, paths), items, steps, dataclasses.replace(base, lr=base.lr * 2), out)
    with pytest.raises(ResumeMismatchError, match=r"fingerprint\.align_weight"):
        train_all(P.build_model(params, paths), items, steps, base, out, align_weight=0.5)
    with pytest.raises(ResumeMismatchError, match=r"fingerprint\.duration_weight"):
        train_all(P.build_model(params, paths), items, steps, base, out, duration_weight=0.5)
    with pytest.raises(ResumeMismatchError, match=r"fingerprint\.assign_weight"):
        train_all(P.build_model(params, paths), items, steps, base, out, assign_weight=0.5)
    with pytest.raises(ResumeMismatchError, match=r"fingerprint\.items"):
        train_all(P.build_model(params, paths), items[:-1], steps, base, out)
    with pytest.raises(ResumeMismatchError, match=r"config\.steps"):  # more steps for a finished stage
        train_all(P.build_model(params, paths), items, StageSteps(3, 2, 0), base, out)


def test_assign_weight_enters_the_fingerprint_only_when_on(tokenizer):
    """Sub-stages trained before the assignment loss existed (or with it off) keep their fingerprints."""
    from taste.tokenizer.train import substage_fingerprint

    off = substage_fingerprint(tokenizer, [], "no_vq", 1.0, 1.0)
    assert "assign_weight" not in off and substage_fingerprint(tokenizer, [], "no_vq", 1.0, 1.0, 0.0) == off
    assert substage_fingerprint(tokenizer, [], "no_vq", 1.0, 1.0, 2.0)["assign_weight"] == 2.0


def test_interrupted_substage_checkpoint_is_not_resumed_on_other_data(world):
    from taste.tokenizer import pipeline as P
    from taste.tokenizer.train import train_substage
    from taste.training.loop import ResumeMismatchError

    root, params = world
    paths = P.stage_paths(params)
    items = P.split_items(P.build_model(params, paths), params, paths, "train")
    cfg = dataclasses.replace(P.substage_train_config(params), steps=2, checkpoint_every=1)
    out = root / "interrupted"
    train_substage(P.build_model(params, paths), items, "text_only", cfg, out)
    (out / "text_only" / "model.safetensors").unlink()  # as if it crashed after the last checkpoint
    with pytest.raises(ResumeMismatchError, match=r"run_text_only.*fingerprint\.items"):
        train_substage(P.build_model(params, paths), items[:-1], "text_only", cfg, out)
    info = train_substage(P.build_model(params, paths), items, "text_only", cfg, out)
    assert info["resumed_from"] == 2 and not info.get("skipped")
