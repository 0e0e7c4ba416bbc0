import pytest

from taste.data.report import markup_kind, plot_duration_histogram, plot_rate_by_speaker, utterance_table, word_table


@pytest.mark.parametrize("markup,kind", [(None, "plain"), ("rate=60%", "slower"), ("rate=150%", "faster"),
                                         ("pitch=+30%", "higher"), ("pitch=-20%", "lower"), ("break=200ms", "pause after")])
def test_markup_kind(markup, kind):
    assert markup_kind(markup) == kind


def test_tables_and_figures_from_prepared_manifests(tiny_corpus, tmp_path):
    import shutil

    from taste.data.records import read_manifest, write_manifest

    raw, info = tiny_corpus
    utts = read_manifest(raw / "manifest.jsonl")
    for split in ("train", "dev", "test", "swap_global", "swap_local"):
        write_manifest(tmp_path / f"{split}.jsonl", [u for u in utts if u.split == split])
    df = utterance_table(tmp_path)
    assert len(df) == len(utts) and df.groupby("split").size().to_dict() == {
        k: v for k, v in info["utterances"].items() if v}
    assert (df["words_per_second"] > 0).all()
    words = word_table(tmp_path, "train")
    assert len(words) == sum(len(u.words) for u in utts if u.split == "train")
    assert set(words["markup"]) <= {"plain", "slower", "faster", "higher", "lower", "pause after"}
    for plot, name in ((plot_duration_histogram, "d.png"), (plot_rate_by_speaker, "r.png")):
        assert plot(df, tmp_path / "fig" / name).stat().st_size > 1000
    shutil.rmtree(tmp_path / "fig")
