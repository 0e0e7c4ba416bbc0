"""Resume only into the same run: config / fingerprint checks, and a crash between a history row and the
next checkpoint leaves no duplicate rows in history.jsonl."""

import json

import pytest
import torch

from taste.training import TrainConfig, train
from taste.training.loop import ResumeMismatchError, resume_mismatch



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


class Crash(Exception):
    pass


def crash_at(step_call: int):
    """A loss_fn that raises on its `step_call`-th call (1-based), i.e. while computing step index step_call - 1."""
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        if calls["n"] == step_call:
            raise Crash(f"simulated crash at call {step_call}")
        return mse(model, batch)

    return loss


def history_steps(run_dir):
    return [json.loads(line)["step"] for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]


CFG = TrainConfig(steps=12, batch_size=8, lr=0.01, warmup_steps=2, log_every=2, checkpoint_every=4)
FP = {"model": {"width": 8}, "data": "digest-a", "n": 40}


def _crashed_run(run_dir, crash_call=7, cfg=CFG, fingerprint=FP):
    with pytest.raises(Crash):
        train(_model(), Regression(), collate, crash_at(crash_call), cfg, run_dir, progress=False,
              fingerprint=fingerprint)


def test_resume_refused_when_config_differs(tmp_path):
    _crashed_run(tmp_path)
    assert (tmp_path / "checkpoint" / "state.json").exists()
    changed = TrainConfig(steps=12, batch_size=8, lr=0.02, warmup_steps=2, log_every=2, checkpoint_every=4)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ResumeMismatchError) as err:
        train(model, Regression(), collate, mse, changed, tmp_path, progress=False, fingerprint=FP)
    msg = str(err.value)
    assert str(tmp_path) in msg and "config.lr" in msg
    assert err.value.differing == ["config.lr"]
    for p, q in zip(before, model.parameters()):  # refused before touching the weights
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_resume_refused_when_fingerprint_differs(tmp_path):
    _crashed_run(tmp_path)
    other = {**FP, "data": "digest-b", "extra": 1}
    with pytest.raises(ResumeMismatchError, match="fingerprint.data") as err:
        train(_model(), Regression(), collate, mse, CFG, tmp_path, progress=False, fingerprint=other)
    assert "fingerprint.extra (not in the saved run)" in err.value.differing
    with pytest.raises(ResumeMismatchError, match="fingerprint"):  # no fingerprint now, one saved
        train(_model(), Regression(), collate, mse, CFG, tmp_path, progress=False)


def test_checkpoint_without_recorded_fingerprint_is_refused():
    saved = {"step": 4, "config": json.loads(json.dumps(CFG.__dict__))}
    assert resume_mismatch(saved, CFG, None) == []
    assert resume_mismatch(saved, CFG, FP) == ["fingerprint (not recorded in the saved run)"]


def test_resume_allowed_with_same_config_and_fingerprint(tmp_path):
    _crashed_run(tmp_path)
    # log/checkpoint cadence does not change the trained weights: still the same run
    cadence = TrainConfig(steps=12, batch_size=8, lr=0.01, warmup_steps=2, log_every=2, checkpoint_every=6)
    result = train(_model(), Regression(), collate, mse, cadence, tmp_path, progress=False,
                   fingerprint={"n": 40, "data": "digest-a", "model": {"width": 8}})  # key order is irrelevant
    assert result.resumed_from == 4 and result.final_step == 12


@pytest.mark.parametrize("crash_call", [7, 8, 11])
def test_crash_between_history_row_and_checkpoint_leaves_no_duplicates(tmp_path, crash_call):
    """Rows for steps 6 (and 10) are written after the step-4 (step-8) checkpoint; a crash before the next
    checkpoint must not leave them twice once the resumed run logs those steps again."""
    straight = _model()
    ref = train(straight, Regression(), collate, mse, CFG, tmp_path / "a", progress=False, fingerprint=FP)

    run = tmp_path / "b"
    _crashed_run(run, crash_call)
    crashed_steps = history_steps(run)
    last_ckpt = json.loads((run / "checkpoint" / "state.json").read_text())["step"]
    assert max(crashed_steps) > last_ckpt  # the crash did hit between a history row and the next checkpoint

    resumed = _model()
    result = train(resumed, Regression(), collate, mse, CFG, run, progress=False, fingerprint=FP)
    assert result.resumed_from == last_ckpt
    steps = history_steps(run)
    assert steps == sorted(set(steps)) == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in result.history] == steps
    # same final state as the uninterrupted run: weights and the logged curve
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (run / "history.jsonl").read_text() == (tmp_path / "a" / "history.jsonl").read_text()
    assert result.history == ref.history


def test_stale_rows_without_any_checkpoint_are_dropped(tmp_path):
    """Crash after rows were logged but before the first checkpoint: the rerun starts from 0 without duplicates."""
    _crashed_run(tmp_path, crash_call=4)  # rows 2 written, first checkpoint would be at step 4
    assert not (tmp_path / "checkpoint").exists() and history_steps(tmp_path) == [2]
    result = train(_model(), Regression(), collate, mse, CFG, tmp_path, progress=False, fingerprint=FP)
    assert result.resumed_from == 0
    assert history_steps(tmp_path) == [2, 4, 6, 8, 10, 12]


def test_torn_last_history_line_is_dropped(tmp_path):
    _crashed_run(tmp_path, crash_call=7)
    with (tmp_path / "history.jsonl").open("a") as fh:
        fh.write('{"step": 8, "lo')  # crash mid-write
    train(_model(), Regression(), collate, mse, CFG, tmp_path, progress=False, fingerprint=FP)
    assert history_steps(tmp_path) == [2, 4, 6, 8, 10, 12]


def test_partial_log_window_after_resume_is_averaged_over_its_steps(tmp_path):
    """checkpoint_every not a multiple of log_every: the first row after resume averages only the steps it saw."""
    cfg = TrainConfig(steps=9, batch_size=8, lr=0.01, log_every=3, checkpoint_every=4)
    straight = _model()
    train(straight, Regression(), collate, mse, cfg, tmp_path / "a", progress=False)
    with pytest.raises(Crash):
        train(_model(), Regression(), collate, crash_at(6), cfg, tmp_path / "b", progress=False)
    seen = []

    def recording(model, batch):
        loss, logs = mse(model, batch)
        seen.append(float(loss.detach()))
        return loss, logs

    result = train(_model(), Regression(), collate, recording, cfg, tmp_path / "b", progress=False)
    assert result.resumed_from == 4 and history_steps(tmp_path / "b") == [3, 6, 9]
    row6 = result.history[1]
    assert row6["step"] == 6 and row6["loss"] == pytest.approx(sum(seen[:2]) / 2)  # steps 5 and 6 only
