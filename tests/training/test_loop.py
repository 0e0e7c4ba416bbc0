import json

import numpy as np
import pytest
import torch

from taste.training import TrainConfig, batch_indices, train
from taste.training.checkpoint import find_checkpoint, save_training_state
from taste.training.loop import EmptyDatasetError, lr_factor


class Regression(torch.utils.data.Dataset):
    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys)


def mse(model, batch):
    x, y = batch
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def test_batch_indices_match_slow_reference():
    n, bs, seed = 7, 3, 5
    stream = []
    for epoch in range(10):
        stream.extend(np.random.default_rng([seed, epoch]).permutation(n).tolist())
    for world in (1, 2):
        for step in range(6):
            for rank in range(world):
                start = (step * world + rank) * bs
                assert batch_indices(step, bs, n, seed, rank, world) == stream[start:start + bs]


def test_lr_schedule_warms_up_then_decays():
    values = [lr_factor(s, 10, 100) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] >= 0.1


def test_training_reduces_loss_and_writes_history(tmp_path):
    model = _model()
    cfg = TrainConfig(steps=60, batch_size=8, lr=0.02, warmup_steps=5, log_every=10, checkpoint_every=20)
    result = train(model, Regression(), collate, mse, cfg, tmp_path, progress=False)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    rows = [json.loads(l) for l in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert (tmp_path / "checkpoint" / "model.safetensors").exists()


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    cfg = TrainConfig(steps=30, batch_size=8, lr=0.01, warmup_steps=3, log_every=5, checkpoint_every=10)
    straight = _model()
    train(straight, Regression(), collate, mse, cfg, tmp_path / "a", progress=False)

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 23:
            raise KeyboardInterrupt("simulated interruption")
        return mse(model, batch)

    resumed = _model()
    with pytest.raises(KeyboardInterrupt):
        train(resumed, Regression(), collate, crashing, cfg, tmp_path / "b", progress=False)
    resumed = _model()
    result = train(resumed, Regression(), collate, mse, cfg, tmp_path / "b", progress=False)
    assert result.resumed_from == 20
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


def test_crash_during_checkpoint_swap_keeps_previous(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters())
    save_training_state(tmp_path / "checkpoint", model, opt, 10, {})
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # crash after the first rename
    found = find_checkpoint(tmp_path / "checkpoint")
    assert found == tmp_path / "checkpoint.old"


def test_empty_dataset_is_a_clear_error(tmp_path):
    class Empty(torch.utils.data.Dataset):
        def __len__(self):
            return 0

    with pytest.raises(EmptyDatasetError, match="empty"):
        train(_model(), Empty(), collate, mse, TrainConfig(steps=1, batch_size=1, lr=0.1), tmp_path, progress=False)


def test_non_finite_loss_stops_with_message(tmp_path):
    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan"), {}

    with pytest.raises(FloatingPointError, match="step 0"):
        train(_model(), Regression(), collate, nan_loss, TrainConfig(steps=2, batch_size=4, lr=0.1), tmp_path,
              progress=False)


def test_tied_weights_checkpoint_and_resume(tmp_path):
    """Tied embeddings (as in Llama-3.2-1B) share storage; checkpoints must still save and stay tied on load."""

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(4, 4, bias=False)
            self.out = torch.nn.Linear(4, 4, bias=False)
            self.out.weight = self.inp.weight
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.out(self.inp(x)))

    cfg = TrainConfig(steps=4, batch_size=4, lr=0.01, checkpoint_every=2)
    model = Tied()
    train(model, Regression(), collate, mse, cfg, tmp_path, progress=False)
    again = Tied()
    train(again, Regression(), collate, mse, TrainConfig(steps=4, batch_size=4, lr=0.01), tmp_path, progress=False)
    assert again.out.weight is again.inp.weight
    torch.testing.assert_close(again.inp.weight, model.inp.weight)
