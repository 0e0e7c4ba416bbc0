"""Length-bucketed batches: every item once per epoch, less padding than random batches, groups that the loop
draws whole, and an exact resume."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from taste.training import TrainConfig, train
from taste.training.batching import LengthBuckets, real_share, unwrap
from taste.training.loop import batch_indices, train_config


def test_length_buckets_cover_every_item_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 1000, size=103).tolist()
    buckets = LengthBuckets(list(range(103)), lengths, batch_size=8, seed=1)
    flat = [i for g in buckets.groups for i in g]
    assert sorted(flat) == list(range(103)) and all(len(g) <= 8 for g in buckets.groups)
    random_groups = [batch_indices(s, 8, 103, 0) for s in range(13)]
    # groups of 8 jittered by +-15%: about 0.87 real positions; random batches of lengths 100-999: about 0.6
    assert real_share(lengths, buckets.groups) > real_share(lengths, random_groups) + 0.15
    sorted_share = real_share(lengths, LengthBuckets(list(range(103)), lengths, 8, seed=1, jitter=0.0).groups)
    assert sorted_share > max(0.93, real_share(lengths, buckets.groups))  # a plain sort pads least
    assert unwrap(lambda items: items)([buckets[0]]) == [buckets.dataset[i] for i in buckets.groups[0]]
    assert LengthBuckets(list(range(103)), lengths, 8, seed=2).groups != buckets.groups


def test_real_share_against_hand_computed_value():
    # groups [0, 1] (lengths 2, 4) and [2] (length 3): real 9, padded 4 * 2 + 3 = 11
    assert real_share([2, 4, 3], [[0, 1], [2]]) == pytest.approx(9 / 11)
    assert real_share([5, 5], [[0, 1]]) == 1.0


def test_length_buckets_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="3 lengths for 4 items"):
        LengthBuckets([0, 1, 2, 3], [1, 2, 3], batch_size=2)


class Varying(torch.utils.data.Dataset):
    """Items of length 1..n: (x [L, 2], y [L]); the collate pads to the batch's longest and records the lengths."""

    def __init__(self, n=24):
        g = torch.Generator().manual_seed(0)
        self.items = [torch.randn(1 + i % 12, 2, generator=g) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x = self.items[i]
        return x, x.sum(-1)


def make_collate(seen):
    def collate(items):
        lengths = [len(x) for x, _ in items]
        seen.append(lengths)
        xs = torch.zeros(len(items), max(lengths), 2)
        ys = torch.zeros(len(items), max(lengths))
        mask = torch.zeros(len(items), max(lengths))
        for b, (x, y) in enumerate(items):
            xs[b, : len(x)], ys[b, : len(x)], mask[b, : len(x)] = x, y, 1
        return xs, ys, mask
    return collate


def masked_mse(model, batch):
    x, y, mask = batch
    loss = (((model(x).squeeze(-1) - y) ** 2) * mask).sum() / mask.sum()
    return loss, {}


def _model():
    torch.manual_seed(1)
    return torch.nn.Linear(2, 1)


def test_train_draws_whole_length_groups(tmp_path):
    data = Varying()
    lengths = [len(x) for x in data.items]
    seen_random, seen_bucketed = [], []
    cfg = TrainConfig(steps=6, batch_size=4, lr=0.01)
    train(_model(), data, make_collate(seen_random), masked_mse, cfg, tmp_path / "r", progress=False)
    bucketed = TrainConfig(steps=6, batch_size=4, lr=0.01, bucket_by_length=True)
    train(_model(), data, make_collate(seen_bucketed), masked_mse, bucketed, tmp_path / "b", progress=False,
          lengths=lengths)
    assert all(len(b) == 4 for b in seen_bucketed)
    groups = LengthBuckets(list(range(len(data))), lengths, 4, seed=0).groups
    expected = [[lengths[i] for i in groups[batch_indices(s, 1, len(groups), 0)[0]]] for s in range(6)]
    assert seen_bucketed == expected
    spread = lambda batches: np.mean([max(b) - min(b) for b in batches])  # noqa: E731
    assert spread(seen_bucketed) < spread(seen_random)


def test_bucketing_without_lengths_is_a_clear_error(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, lr=0.01, bucket_by_length=True)
    with pytest.raises(ValueError, match="no item lengths"):
        train(_model(), Varying(), make_collate([]), masked_mse, cfg, tmp_path, progress=False)


def test_bucketed_run_resumes_to_identical_weights(tmp_path):
    data = Varying()
    lengths = [len(x) for x in data.items]
    cfg = TrainConfig(steps=12, batch_size=4, lr=0.01, checkpoint_every=5, log_every=3, bucket_by_length=True)
    straight = _model()
    train(straight, data, make_collate([]), masked_mse, cfg, tmp_path / "a", progress=False, lengths=lengths)
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("simulated interruption")
        return masked_mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(_model(), data, make_collate([]), crashing, cfg, tmp_path / "b", progress=False, lengths=lengths)
    resumed = _model()
    result = train(resumed, data, make_collate([]), masked_mse, cfg, tmp_path / "b", progress=False, lengths=lengths)
    assert result.resumed_from == 5
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["config"]["bucket_by_length"] is True


def test_train_config_reads_the_switch_and_the_shared_cadence():
    params = {"shared": {"seed": 3, "mixed_precision": "no", "checkpoint_every": 7, "log_every": 3}}
    block = {"steps": 5, "batch_size": 2, "lr": 0.1, "warmup_steps": 0}
    assert train_config({"train": {**block, "bucket_by_length": False}}, params).bucket_by_length is False
    cfg = train_config({"train": {**block, "bucket_by_length": True}}, params)
    assert cfg.bucket_by_length is True and (cfg.checkpoint_every, cfg.log_every, cfg.seed) == (7, 3, 3)
    with pytest.raises(KeyError, match="bucket_by_length"):  # params.yaml gives it: no default stands in
        train_config({"train": block}, params)


def test_every_train_block_of_params_yaml_gives_every_key():
    """The stages' train blocks and the shared cadence in params.yaml (and after each profile) make a TrainConfig."""
    import yaml

    from taste.config import deep_merge, load_params

    repo = Path(__file__).resolve().parents[2]
    base = load_params(repo / "params.yaml")
    for profile in [None, *sorted((repo / "profiles").glob("*.yaml"))]:
        params = base if profile is None else deep_merge(base, yaml.safe_load(profile.read_text()))
        tokenizer = {"train": {**params["tokenizer"]["train"], "steps": 1}}  # its sub-stages give the steps
        for section in (params["units"], params["vocoder"], params["asr"], tokenizer,
                        params["lm"]["text_lm"], params["lm"]["taslm"], params["lm"]["s3_lm"]):
            assert train_config(section, params).steps > 0


def test_runs_saved_before_the_switch_existed_keep_their_identity(tmp_path):
    """A run saved without bucket_by_length (older code) is the same run as bucket_by_length False: same folder
    name, and it resumes; with the switch on it is another run."""
    from dataclasses import asdict

    from taste.training.checkpoint import run_key
    from taste.training.loop import resume_mismatch

    off = TrainConfig(steps=4, batch_size=2, lr=0.1)
    on = TrainConfig(steps=4, batch_size=2, lr=0.1, bucket_by_length=True)
    older = {k: v for k, v in asdict(off).items() if k != "bucket_by_length"}
    assert run_key(off, {"d": 1}) == run_key(older, {"d": 1}) != run_key(on, {"d": 1})
    saved = {"config": older, "fingerprint": {"d": 1}}
    assert resume_mismatch(saved, off, {"d": 1}) == []
    assert resume_mismatch(saved, on, {"d": 1}) == ["config.bucket_by_length (not in the saved run)"]
