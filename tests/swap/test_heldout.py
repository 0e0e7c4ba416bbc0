"""The held-out text local set (taste.swap.heldout): built deterministically at the test voices, never from training
text, and reported as its own row beside the test recordings."""
from pathlib import Path

import numpy as np
import pytest
import torch

from swap_fakes import FakeTokenizer
from test_swap_pitch import FakePitchVocoder
from taste.data.features import MelConfig
from taste.data.pitch import PitchConfig
from taste.data.storygen import generate_story
from taste.data.validate import read_speech
from taste.swap.edit import EditSettings
from taste.swap.edited_set import measure_edited_set
from taste.swap.heldout import (HeldoutSettings, HeldoutTextError, build_heldout_bases, check_unseen,
                                heldout_settings_from_params, heldout_skip_reason, read_heldout_sentences)
from taste.swap.slope import SlopeSettings
from taste.swap.study import SwapSettings
from taste.swap.summary import local_set_rows

ROOT = Path(__file__).resolve().parents[2]
ASSET = ROOT / "assets" / "heldout_sentences.txt"
PARAMS = {"shared": {"seed": 7, "sample_rate": 16000, "paths": {"raw": "unused"}},
          "data": {"source": "synthetic",
                   "speech": {"n_train_speakers": 2, "n_test_speakers": 2, "pitch": [25, 75],
                              "word_markup_share": 0.25, "dither": 0.0003, "max_seconds": 10.0}},
          "prepare": {"speaker_partials_per_second": 1.0}}
TRAINING = ["the cat sat on the mat today", "a dog ran far away from home"]


def tiny_file(tmp_path, lines=("Is the modem online yet?", "Reboot the tiny server now.", "Seven cables, two plugs.")):
    path = tmp_path / "heldout.txt"
    path.write_text("# a comment\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def build(tmp_path, name, seed=7, training=TRAINING, lines=None):
    params = {**PARAMS, "shared": {**PARAMS["shared"], "seed": seed}}
    path = tiny_file(tmp_path) if lines is None else tiny_file(tmp_path, lines)
    settings = HeldoutSettings(sentences=str(path), max_bases=2, min_words=3)
    return build_heldout_bases(params, settings, tmp_path / name, lambda u: read_speech(u.audio_path, u.text),
                               training=training)


def test_sentences_are_read_normalised_and_checked(tmp_path):
    assert read_heldout_sentences(tiny_file(tmp_path), 3, 14) == [
        "is the modem online yet", "reboot the tiny server now", "seven cables two plugs"]
    with pytest.raises(HeldoutTextError, match=r"heldout.txt:5: 4 words, expected 5\.\.14"):
        read_heldout_sentences(tiny_file(tmp_path), 5, 14)
    with pytest.raises(HeldoutTextError, match="same sentence as line 3"):
        read_heldout_sentences(tiny_file(tmp_path, ("One two three.", "one, two, THREE")), 3, 14)
    with pytest.raises(HeldoutTextError, match="no sentences"):
        read_heldout_sentences(tiny_file(tmp_path, ()), 3, 14)


def test_a_sentence_of_the_training_text_is_refused_with_a_clear_error(tmp_path):
    check_unseen(["is the modem online yet"], TRAINING)
    with pytest.raises(HeldoutTextError, match=r"1 held-out sentence\(s\) occur in the training text, so they are "
                                               r"not held out: 'the cat sat on the mat today'"):
        check_unseen(["is the modem online yet", "the cat sat on the mat today"], ["The cat sat on the mat, today!"])
    with pytest.raises(HeldoutTextError, match="not held out: 'reboot the tiny server now'"):
        build(tmp_path, "audio", training=TRAINING + ["reboot the tiny server now"])
    assert not (tmp_path / "audio").exists()  # refused before anything is synthesised


def test_the_shipped_sentences_are_held_out():
    sentences = read_heldout_sentences(ASSET)
    assert len(sentences) >= 60 and all(5 <= len(s.split()) <= 14 for s in sentences)
    generated = [s for i in range(300) for s in generate_story(1234, "tx", i, (4, 7), 4, 20).sentences]
    check_unseen(sentences, generated, "the story generator's text")
    vocab = {w for s in generated for w in s.split()}
    assert np.mean([w not in vocab for s in sentences for w in s.split()]) > 0.5  # mostly other vocabulary
    raw = ROOT / "data" / "raw"
    if (raw / "text_pool.txt").is_file():  # the materialised corpus of this checkout, where there is one
        from taste.swap.heldout import training_texts
        check_unseen(sentences, training_texts(raw))


def build_in_fresh_process(tmp_path, name):
    """build() in a new interpreter, as the swap stage's kernel does it (espeak keeps state between calls of one
    process, so earlier tests' synthesis can shift a rendition by a sample; the stage's own order is fixed).
    Returns (utterance dicts, word j per base, speaker embeddings as lists, info) through a JSON file."""
    import json
    import subprocess
    import sys

    code = ("import dataclasses, json, sys; from pathlib import Path; sys.path[:0] = sys.argv[3:]; "
            "import test_heldout as t; h = t.build(Path(sys.argv[1]), sys.argv[2]); "
            "Path(sys.argv[1], sys.argv[2] + '.json').write_text(json.dumps({"
            "'utts': [dataclasses.asdict(u) for u, _ in h.bases], 'js': [j for _, j in h.bases], "
            "'speakers': {k: v.tolist() for k, v in h.speakers.items()}, 'info': h.info}))")
    here = str(Path(__file__).resolve().parent)
    subprocess.run([sys.executable, "-c", code, str(tmp_path), name, here, str(ROOT / "src")], check=True)
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_the_set_is_built_deterministically_at_the_test_voices(tmp_path):
    a, b = build_in_fresh_process(tmp_path, "a"), build_in_fresh_process(tmp_path, "b")
    assert [u["id"] for u in a["utts"]] == ["hot0000", "hot0001"]
    assert [u["speaker"] for u in a["utts"]] == a["info"]["speakers"] and len(set(a["info"]["speakers"])) == 2
    for ua, ub, ja, jb in zip(a["utts"], b["utts"], a["js"], b["js"]):
        assert {**ua, "audio_path": ""} == {**ub, "audio_path": ""} and ja == jb
        assert 1 <= ja <= len(ua["words"]) - 2 and ua["words"][ja]["markup"] is None
        assert Path(ua["audio_path"]).read_bytes() == Path(ub["audio_path"]).read_bytes()  # identical audio
        assert a["speakers"][ua["id"]] == b["speakers"][ub["id"]] and len(a["speakers"][ua["id"]]) == 256
    assert a["info"]["n_sentences"] == 2 and a["info"]["share_tokens_unseen"] > 0.5
    c = build(tmp_path, "c", seed=8)  # another shared.seed: other draws, other dither
    assert Path(c.bases[0][0].audio_path).read_bytes() != Path(a["utts"][0]["audio_path"]).read_bytes()


def test_settings_and_skip_reasons():
    from taste.config import ParamsError, load_params

    section = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["swap"]["heldout"]
    s = heldout_settings_from_params({**section, "sentences": "x.txt", "max_bases": "3", "rate_wpm": [120, 130]})
    with pytest.raises(ParamsError, match=r"swap.heldout: missing \['max_bases'\]"):
        heldout_settings_from_params({k: v for k, v in section.items() if k != "max_bases"})
    assert (s.sentences, s.max_bases, s.rate_wpm) == ("x.txt", 3, (120, 130))
    assert heldout_skip_reason("synthetic", s) is None
    assert "data.source=librispeech" in heldout_skip_reason("librispeech", s)
    assert "max_bases is 0" in heldout_skip_reason("synthetic", HeldoutSettings(max_bases=0))
    with pytest.raises(ValueError, match="min_words"):
        HeldoutSettings(min_words=2)


class MiddleLengthTokenizer(FakeTokenizer):
    """encode: word j (the middle word of a 3-word sentence) codes the recording's length in units; others code 10."""

    def encode(self, mel, text):
        codes = torch.full((len(text.split()), 1), 10, dtype=torch.long)
        codes[1, 0] = int(round(mel.shape[-1] / 4))
        return type("Codes", (), {"codes": codes})()


def test_the_heldout_row_appears_beside_the_test_row(tmp_path):
    held = build(tmp_path, "audio", lines=("Modems reboot nightly.", "Cables need labels."))
    assert all(j == 1 for _, j in held.bases)  # 3-word sentences: j in 1..n-2
    found = measure_edited_set(
        MiddleLengthTokenizer(batched=True), FakePitchVocoder(), held.bases,
        lambda u: read_speech(u.audio_path, u.text), EditSettings(), SwapSettings(seeds=(0,), batch_size=8),
        held.speaker_of, MelConfig(), PitchConfig(), SlopeSettings(min_truth_duration_s=0.05), n_boot=20, seed=0)
    assert len(found.pairs) == 2 * 2 * 2  # two sentences, stretch and shift, both directions
    rows = local_set_rows({"test_stretched": found.slope, "heldout_stretched": found.slope})
    assert list(rows) == ["test_stretched", "heldout_stretched"]
    row = rows["heldout_stretched"]["duration"]
    assert row["n_directed_pairs"] == 4
    assert set(row) == {"n_directed_pairs", "retention", "transfer", "control", "leakage_j-1", "leakage_j+1"}
    assert row["retention"]["value"] > 0 and set(row["retention"]) == {"value", "ci_lo", "ci_hi"}
    assert "local_rate_transfer_met" in rows["heldout_stretched"]["goals"]
    assert local_set_rows({"heldout_stretched": {}}) == {"heldout_stretched": {"goals": {}}}


def test_a_rendition_over_max_seconds_is_an_error_not_a_drop(tmp_path):
    """The corpus drops a too-long recording; the held-out set's sentence file is fixed, so it stops instead."""
    params = {**PARAMS, "data": {**PARAMS["data"], "speech": {**PARAMS["data"]["speech"], "max_seconds": 0.3}}}
    settings = HeldoutSettings(sentences=str(tiny_file(tmp_path)), max_bases=1, min_words=3)
    with pytest.raises(HeldoutTextError, match=r"'is the modem online yet' at \d+ wpm lasts over "
                                               r"data.speech.max_seconds 0.3 s"):
        build_heldout_bases(params, settings, tmp_path / "long", lambda u: read_speech(u.audio_path, u.text),
                            training=TRAINING)
    assert not list(tmp_path.glob("long/**/*.wav"))
