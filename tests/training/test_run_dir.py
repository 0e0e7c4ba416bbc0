"""One run folder per (config, fingerprint): same settings, data and code resume; a change of any of them starts a
fresh folder next to the old one (never deleted); train() still refuses a folder holding another run."""

import dataclasses

import pytest
import torch

import taste.training.checkpoint as ckpt
from taste.training import TrainConfig, train
from taste.training.checkpoint import code_digest, dataset_digest, fresh_run_dir, items_digest, run_key
from taste.training.loop import ResumeMismatchError

CFG = TrainConfig(steps=4, batch_size=4, lr=0.01, log_every=2, checkpoint_every=2)


class Regression(torch.utils.data.Dataset):
    def __init__(self, shift=0.0, n=12):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=g) + shift
        self.y = self.x.sum(-1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"id": f"u{i}", "x": self.x[i], "y": self.y[i]}


def collate(items):
    return torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items])


def mse(model, batch):
    x, y = batch
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    return loss, {}


def _model():
    torch.manual_seed(1)
    return torch.nn.Linear(3, 1)


def _run(base, data, code=None):
    """What every trainer does: fingerprint = settings + data digest + code digest; keyed folder; train."""
    fingerprint = {"model": {"width": 3}, "data": dataset_digest(data), "code": code or ckpt.code_digest()}
    run = fresh_run_dir(base, CFG, fingerprint)
    model = _model()
    return run, model, train(model, data, collate, mse, CFG, run, progress=False, fingerprint=fingerprint)


def test_code_digest_covers_the_package_sources_and_is_cached():
    import taste

    digest = code_digest()
    assert len(digest) == 64 and digest == code_digest()
    assert code_digest.cache_info().hits >= 1
    assert any(p.suffix == ".py" for p in __import__("pathlib").Path(taste.__file__).parent.rglob("*.py"))


def test_items_digest_sees_tensor_bytes_fields_and_order():
    @dataclasses.dataclass
    class Item:
        id: str
        x: torch.Tensor
        words: tuple

    a, b = Item("a", torch.zeros(3), (1, 2)), Item("b", torch.ones(3), (3,))
    base = items_digest([a, b])
    assert base == items_digest([Item("a", torch.zeros(3), (1, 2)), Item("b", torch.ones(3), (3,))])
    assert base != items_digest([b, a])
    assert base != items_digest([a, Item("b", torch.ones(3) + 1e-6, (3,))])
    assert base != items_digest([a, Item("b", torch.ones(3, dtype=torch.float64), (3,))])
    assert items_digest([{"x": torch.zeros(2), "l": [torch.zeros(1)]}]) != items_digest([{"x": torch.zeros(2),
                                                                                          "l": [torch.ones(1)]}])
    big = torch.zeros(5000)  # repr() of a large tensor elides values: digests must not
    assert items_digest([(big,)]) != items_digest([(big.clone().index_fill_(0, torch.tensor([2500]), 1.0),)])


def test_run_key_ignores_cadence_but_not_settings():
    fp = {"data": "a"}
    assert run_key(CFG, fp) == run_key(dataclasses.replace(CFG, log_every=1, checkpoint_every=1), fp)
    assert run_key(CFG, fp) != run_key(dataclasses.replace(CFG, lr=0.02), fp)
    assert run_key(CFG, fp) != run_key(CFG, {"data": "b"})


def test_same_code_and_data_resume_the_finished_run(tmp_path):
    run, first, r1 = _run(tmp_path, Regression())
    run2, again, r2 = _run(tmp_path, Regression())
    assert run2 == run and r1.resumed_from == 0 and r2.resumed_from == CFG.steps
    torch.testing.assert_close(again.weight, first.weight, rtol=0, atol=0)
    assert (run / "fingerprint.json").is_file()


def test_changed_data_trains_afresh_in_a_new_folder(tmp_path):
    run, _, _ = _run(tmp_path, Regression())
    run2, _, r2 = _run(tmp_path, Regression(shift=0.5))  # same count, same ids, different tensors
    assert run2 != run and r2.resumed_from == 0
    assert (run / "checkpoint" / "state.json").is_file()  # the old run is kept, not silently deleted


def test_changed_code_does_not_reuse_old_weights(tmp_path, monkeypatch):
    run, first, _ = _run(tmp_path, Regression())
    monkeypatch.setattr(ckpt, "code_digest", lambda: "f" * 64)
    torch.manual_seed(123)
    run2, fresh, r2 = _run(tmp_path, Regression())
    assert run2 != run and r2.resumed_from == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([run.name, run2.name])


def test_fresh_run_dir_never_deletes_an_existing_run(tmp_path):
    run, _, _ = _run(tmp_path, Regression())
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    fresh_run_dir(tmp_path, CFG, {"something": "else"})
    fresh_run_dir(tmp_path, dataclasses.replace(CFG, steps=9), {"model": {"width": 3}})
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_a_folder_holding_another_run_is_refused(tmp_path):
    run, _, _ = _run(tmp_path, Regression())
    # e.g. a folder copied or renamed by hand: train() compares the saved fingerprint and refuses
    with pytest.raises(ResumeMismatchError, match="fingerprint.data"):
        train(_model(), Regression(shift=1.0), collate, mse, CFG, run, progress=False,
              fingerprint={"model": {"width": 3}, "data": dataset_digest(Regression(shift=1.0)),
                           "code": code_digest()})
