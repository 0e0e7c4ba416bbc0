"""The tokenizer's stretch augmentation (tokenizer.stretch_augment): its plan, its items, its settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from taste.data.records import Utterance, WordAlignment
from taste.tokenizer.augment import StretchAugment, span_edit, stretch_plan, stretched_items

SR = 16000


def _utt(uid: str, durations: tuple[float, ...]) -> Utterance:
    starts = [sum(durations[:i]) for i in range(len(durations))]
    words = tuple(WordAlignment(f"w{i}", s, d) for i, (s, d) in enumerate(zip(starts, durations)))
    return Utterance(id=uid, audio_path=f"data/raw/{uid}.wav", duration=sum(durations), sample_rate=SR,
                     text=" ".join(w.word for w in words), speaker="s1", split="train", rate_wpm=None, pitch=None,
                     words=words)


def test_plan_is_seeded_per_utterance_and_respects_its_settings():
    utts = [_utt(f"u{i}", (0.3, 0.05, 0.4)) for i in range(200)]
    settings = StretchAugment(share=0.5, min_factor=0.4, max_factor=2.5, min_word_s=0.08)
    plan = stretch_plan(utts, settings, seed=7)
    assert 70 <= len(plan) <= 130  # about half of 200
    assert plan == stretch_plan(utts, settings, seed=7)
    assert plan != stretch_plan(utts, settings, seed=8)
    for u, j, factor in plan:
        assert u.words[j].duration >= 0.08  # the 0.05 s word is never stretched
        assert 0.4 <= factor <= 2.5
    # an utterance's draw does not depend on the others: the plan of a subset is the subset of the plan
    chosen = {u.id: (j, f) for u, j, f in plan}
    assert {u.id: (j, f) for u, j, f in stretch_plan(utts[::3], settings, seed=7)} == \
        {k: v for k, v in chosen.items() if int(k[1:]) % 3 == 0}
    # log-uniform: about as many factors below 1 as above
    below = sum(f < 1 for _, _, f in plan)
    assert 0.3 < below / len(plan) < 0.7
    assert stretch_plan(utts, StretchAugment(share=0.0), seed=7) == []
    assert len(stretch_plan(utts, StretchAugment(share=1.0), seed=7)) == 200


@pytest.mark.parametrize("bad", [{"share": 1.5}, {"share": -0.1}, {"min_factor": 0.0}, {"min_factor": 3.0}])
def test_settings_refuse_impossible_values(bad):
    with pytest.raises(ValueError, match="stretch_augment"):
        StretchAugment(**bad)


def test_settings_from_params_read_numbers():
    s = StretchAugment.from_params({"share": 1, "min_factor": "0.5", "max_factor": 2})
    assert s == StretchAugment(share=1.0, min_factor=0.5, max_factor=2.0)


def test_span_edit_stretches_by_the_factor():
    """Word j's own samples are f x as long; it starts where f x the left context ends after the left join; the
    later audio moves by f(L + 2c) - (L + 2c) (the context is stretched too, and the crossfades overlap it)."""
    t = np.arange(int(1.2 * SR)) / SR
    wav = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    for factor in (0.4, 2.5):
        out, span = span_edit(wav, SR, 0.4, 0.8, "stretch", factor, 0.01)
        assert span.duration_s == pytest.approx(factor * 0.4, abs=0.002)
        assert span.start_s == pytest.approx(0.4 - 0.01 + factor * 0.01, abs=0.001)
        assert span.shift_s == pytest.approx((factor - 1) * 0.42, abs=0.002)
        assert len(out) - len(wav) == round(span.shift_s * SR)
    with pytest.raises(ValueError, match="factor"):
        span_edit(wav, SR, 0.4, 0.8, "stretch", 0.0, 0.01)


def test_span_edit_labels_a_short_compressed_word_by_its_own_samples():
    """An 80 ms word compressed to 0.4x lasts 32 ms (its own samples), not the 20 ms between the crossfade joins."""
    t = np.arange(int(1.0 * SR)) / SR
    wav = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    _, span = span_edit(wav, SR, 0.5, 0.58, "stretch", 0.4, 0.01)
    assert span.duration_s == pytest.approx(0.032, abs=0.001)
    # its edges lie c(1 - f) = 6 ms inside the crossfades, blended with the neighbours' context, no further
    assert span.start_s == pytest.approx(0.5 - 0.006, abs=0.001)
    assert span.start_s + span.duration_s == pytest.approx(0.58 + span.shift_s + 0.006, abs=0.001)


def test_span_edit_at_the_start_has_no_left_context():
    t = np.arange(int(1.0 * SR)) / SR
    wav = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    _, span = span_edit(wav, SR, 0.0, 0.3, "stretch", 2.0, 0.01)
    assert span.start_s == pytest.approx(0.0, abs=1 / SR)
    assert span.duration_s == pytest.approx(0.6, abs=0.002)


def test_stretched_items_carry_the_edit(tokenizer):
    """Each planned stretch becomes one item: '<id>~stretch', word j as long as the edited span, later words moved
    by the change, units and speaker from the callbacks (the base utterance's speaker)."""
    durations = (0.3, 0.4, 0.3)
    base = _utt("u1", durations)
    base = base.replace(text="the cat sat", words=tuple(w.__class__(t, w.start, w.duration)
                                                         for w, t in zip(base.words, ("the", "cat", "sat"))))
    t = np.arange(int(1.0 * SR)) / SR
    wav = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    seen_speakers = []

    class Speakers:
        def get(self, uid):
            seen_speakers.append(uid)
            return torch.ones(256)

    def mel(w):
        return torch.randn(80, len(w) // 160)

    items = stretched_items(tokenizer, [(base, 1, 2.0)], lambda u: wav, mel,
                            lambda m: torch.arange(m.shape[-1] // 4) % tokenizer.cfg.decoder.n_units, Speakers(),
                            rate_hz=25.0, crossfade_s=0.01)
    (item,) = items
    assert item.id == "u1~stretch" and item.text == "the cat sat"
    assert item.word_durations_s[1] == pytest.approx(2.0 * 0.4, abs=0.005)
    assert item.word_starts_s[1] == pytest.approx(0.3 + 0.01, abs=0.002)  # 2 x 10 ms of left context, one overlapped
    assert item.word_durations_s[0] == pytest.approx(0.3) and item.word_durations_s[2] == pytest.approx(0.3)
    shift = 2.0 * (0.4 + 0.02) - (0.4 + 0.02)
    assert item.word_starts_s[2] == pytest.approx(0.7 + shift, abs=0.002)
    assert seen_speakers == ["u1"]
    assert len(item.boundaries) == 3 and item.boundaries[2] == round((0.7 + shift) * 25)
    assert math.isclose(float(item.speaker.sum()), 256.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import os
    from pathlib import Path

    from tk_fake_world import build_fake_world

    root = tmp_path_factory.mktemp("world")
    params = build_fake_world(root, Path(__file__).resolve().parents[2] / "params.yaml")
    old = os.getcwd()
    os.chdir(root)
    yield root, params
    os.chdir(old)


def test_training_set_gains_the_stretched_copies(world):
    """with_stretched on a stage-like folder: share 1 adds one '~stretch' item per train utterance, made from its
    audio with the study's unit tokenizer; share 0 adds nothing; a backend without that tokenizer is refused."""
    import copy

    from taste.tokenizer import pipeline as P

    root, params = world
    paths = P.stage_paths(params)
    model = P.build_model(params, paths)
    train = P.split_items(model, params, paths, "train")
    off = copy.deepcopy(params)
    off["tokenizer"]["stretch_augment"]["share"] = 0.0
    assert [it.id for it in P.with_stretched(model, off, paths, train)] == [it.id for it in train]
    on = copy.deepcopy(params)
    on["tokenizer"]["stretch_augment"]["share"] = 1.0
    out = P.with_stretched(model, on, paths, train)
    assert [it.id for it in out[: len(train)]] == [it.id for it in train]
    assert sorted(it.id for it in out[len(train):]) == sorted(f"{it.id}~stretch" for it in train)
    for it in out[len(train):]:
        assert it.has_timings and len(it.units) > 0 and int(it.units.max()) < params["units"]["codebook_size"]
        base = next(b for b in train if f"{b.id}~stretch" == it.id)
        assert it.text == base.text and torch.equal(it.speaker, base.speaker)
        grown = sum(it.word_durations_s) - sum(base.word_durations_s)
        assert grown != pytest.approx(0.0, abs=1e-3)
        # the units are the edited audio's: 25 per second of it (the base audio lasts 0.2 + 0.25 s per word)
        seconds = 0.2 + 0.25 * base.n_words + grown
        assert abs(len(it.units) - 25 * seconds) <= 2
    s3 = copy.deepcopy(on)
    s3["units"]["backend"] = "s3_pretrained"
    with pytest.raises(ValueError, match="trained unit tokenizer"):
        P.with_stretched(model, s3, paths, train)
