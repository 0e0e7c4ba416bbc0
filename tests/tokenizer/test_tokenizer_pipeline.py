"""The stage's steps on a fake upstream world: items, three sub-stages + resume, ablations, codes, table rows."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

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


def test_stage_steps_end_to_end(world):
    from taste.data.records import WordAlignment
    from taste.tokenizer import pipeline as P
    from taste.tokenizer import table as T
    from taste.tokenizer.data import load_items, save_items, with_last_layer_values
    from taste.tokenizer.evaluate import AudioJudges
    from taste.training import load_safetensors

    root, params = world
    paths = P.stage_paths(params)
    model = P.build_model(params, paths)
    items = {s: P.split_items(model, params, paths, s) for s in P.SPLITS}
    assert all(len(v) == 6 for v in items.values())
    save_items(root / "cache.safetensors", items["train"])
    again = load_items(root / "cache.safetensors")
    assert [a.boundaries for a in again] == [b.boundaries for b in items["train"]]
    assert torch.equal(again[0].values, items["train"][0].values)

    infos = P.train_main(params, model, items["train"], paths)
    assert [i["stage"] for i in infos] == ["text_only", "no_vq", "rvq"]
    assert (paths.final / "config.json").is_file()
    rerun = P.train_main(params, P.build_model(params, paths), items["train"], paths)
    assert all(i.get("skipped") for i in rerun)  # finished sub-stages are not retrained
    for name in P.ABLATIONS:
        P.train_ablation(params, name, items["train"], paths)

    counts = P.write_codes(model, params, paths, items)
    codes = load_safetensors(paths.codes / "test.safetensors")
    it = items["test"][0]
    assert counts["test"] == 6 and codes[it.id].dtype == torch.int16
    assert codes[it.id].shape == (it.n_words, params["tokenizer"]["rvq"]["n_quantizers"])

    models = {k: P.load_trained(paths, k) for k in ("text_only", "no_vq", "rvq", *P.ABLATIONS)}
    ev = items["test"][:4]
    rows = T.model_rows(models, ev, with_last_layer_values(ev), P.other_mode(params))
    names = [r.name for r in rows]
    assert names == ["text_only", "taste_no_vq", "taste_rvq1", "taste_rvq2", "taste_rvq4", "taste_rvq4_prefix",
                     "taste_rvq4_last_layer_values", f"taste_rvq4_duration_{P.other_duration_feature(params)}"]
    measures, decodes = [], {}
    for r in rows:
        m, decodes[r.name] = T.model_row_measures(r, 20, 0, 25.0)
        measures.append(m)
    by = {m["system"]: m for m in measures}
    assert by["text_only"]["bitrate_bps"] == 0 and math.isnan(by["taste_no_vq"]["bitrate_bps"])
    assert by["taste_rvq2"]["bitrate_bps"] == pytest.approx(2 * by["taste_rvq1"]["bitrate_bps"])
    assert "gen_within_50ms" in by["taste_rvq4"] and "gen_within_50ms" not in by["taste_rvq4_prefix"]

    fake = AudioJudges(transcribe=lambda w: "the cat", align=lambda w, t: tuple(
        WordAlignment(x, 0.1 * j, 0.1) for j, x in enumerate(t.split())),
        dnsmos=lambda w: 3.0, speaker_embed=lambda w: np.ones(256))
    sub = ev[:2]
    wavs = {"original": [np.zeros(1600, np.float32)] * 2, "taste_rvq4": [np.zeros(1600, np.float32)] * 2}
    per = T.audio_rows(wavs, [i.id for i in sub], [i.text for i in sub], [i.word_durations_s for i in sub],
                       [i.speaker.numpy() for i in sub], fake, progress=lambda s: None)
    from taste.tokenizer.evaluate import summarise_audio

    table = T.assemble(measures, summarise_audio(per, 20), {"original": {"bitrate_bps": 256000.0}})
    assert list(table.index[:1]) == ["original"] and "fa_within_50ms" in table.columns
    assert table.loc["taste_rvq4", "dnsmos"] == 3.0
    assert set(T.tidy_for_plot(table, ["dnsmos"])["system"]) == {"original", "taste_rvq4"}
