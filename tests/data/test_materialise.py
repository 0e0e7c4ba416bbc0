import copy
from pathlib import Path
import json

from taste.data.materialise import materialise
from taste.data.records import read_manifest


def _tree(d):
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_two_materialisations_give_identical_bytes(tiny_corpus, tiny_params, tmp_path, monkeypatch):
    shared, _ = tiny_corpus  # made earlier in this session, in another folder, with absolute paths
    monkeypatch.chdir(tmp_path)  # manifest paths are relative to cwd (the repository root in the study)
    materialise(copy.deepcopy(tiny_params), Path("a"))
    (tmp_path / "b" / "audio").mkdir(parents=True)
    (tmp_path / "b" / "audio" / "stale.wav").write_bytes(b"left over from a bigger corpus")
    two_workers = copy.deepcopy(tiny_params)
    two_workers["data"]["workers"] = 2  # a process pool must not change a single byte
    materialise(two_workers, Path("b"))
    first, second = tmp_path / "a", tmp_path / "b"
    assert _tree(first) == _tree(second) == _tree(shared)
    for rel in _tree(first):
        a, b = (first / rel).read_bytes(), (second / rel).read_bytes()
        assert a.replace(b"a/audio/", b"b/audio/") == b, rel
        c = (shared / rel).read_bytes().replace(f"{shared.as_posix()}/".encode(), b"a/")
        assert a == c, rel


def test_splits_speakers_and_sizes(tiny_corpus, tiny_params):
    TINY = tiny_params
    out, info = tiny_corpus
    utts = read_manifest(out / "manifest.jsonl")
    by = {s: [u for u in utts if u.split == s] for s in ("train", "dev", "test", "swap_global", "swap_local")}
    train_spk = {u.speaker for u in by["train"]}
    assert train_spk.isdisjoint({u.speaker for s in ("test", "swap_global", "swap_local") for u in by[s]})
    assert len(by["dev"]) == 2 and len(by["test"]) == 2
    assert sum(u.duration for u in by["train"]) >= 3600 * TINY["data"]["speech"]["train_hours"]
    assert info["utterances"]["swap_global"] == 4 and info["utterances"]["swap_local"] == 4
    for u in utts:
        assert (out / "audio" / f"{u.id}.wav").is_file()
        assert len(u.words) == len(u.text.split()) and 4 <= len(u.text.split()) <= 14
        assert u.duration <= TINY["data"]["speech"]["max_seconds"]
    stories = {u.story_id: u.split for u in utts}
    assert len({(sid, split) for sid, split in stories.items()}) == len(stories)  # a story lives in one split


def test_swap_pairs(tiny_corpus):
    out, _ = tiny_corpus
    utts = read_manifest(out / "manifest.jsonl")
    glob = {(u.pair.set, u.pair.role): u for u in utts if u.split == "swap_global"}
    slow, fast = glob[("global_rate", "slow")], glob[("global_rate", "fast")]
    assert slow.text == fast.text and slow.speaker == fast.speaker and slow.rate_wpm <= 130 <= 210 <= fast.rate_wpm
    assert slow.duration > fast.duration
    low, high = glob[("global_pitch", "low")], glob[("global_pitch", "high")]
    assert low.pitch < high.pitch and low.text == high.text
    local = [u for u in utts if u.split == "swap_local"]
    for pid in {u.pair.pair_id for u in local}:
        base, var = sorted((u for u in local if u.pair.pair_id == pid), key=lambda u: u.pair.role)
        j = base.pair.changed_word
        assert (base.text, base.speaker, base.rate_wpm, base.pitch) == (var.text, var.speaker, var.rate_wpm, var.pitch)
        diff = [i for i, (a, b) in enumerate(zip(base.words, var.words)) if a.markup != b.markup]
        assert diff == [j] and base.words[j].markup is None and var.words[j].markup is not None


def test_text_pool_and_stories(tiny_corpus, tiny_params):
    TINY = tiny_params
    out, info = tiny_corpus
    pool = (out / "text_pool.txt").read_text(encoding="utf-8")
    stories = pool.strip("\n").split("\n\n")
    assert len(stories) == TINY["data"]["text"]["n_stories"] == info["text_pool"]["stories"]
    records = [json.loads(line) for line in (out / "stories.jsonl").read_text().splitlines()]
    assert {r["subset"] for r in records} >= {"train", "test", "heldout"}
    ids = [r["story_id"] for r in records]
    assert len(ids) == len(set(ids))
    assert sum(r["subset"] == "heldout" for r in records) == TINY["data"]["text"]["heldout_stories"]
    assert all(len(s.split()) >= 4 for s in pool.splitlines() if s)
    info_file = json.loads((out / "corpus_info.json").read_text())
    assert info_file["utterances"] == info["utterances"]
