"""The training loop places every batch on the accelerator's device: tensors inside dataclasses, dicts, lists and
named tuples included (the tokenizer's and the LMs' batches are dataclasses)."""

from dataclasses import dataclass
from typing import NamedTuple

import torch

from taste.training.loop import to_device


class Pair(NamedTuple):
    a: torch.Tensor
    b: int


@dataclass
class Inner:
    x: torch.Tensor
    names: list[str]


@dataclass
class Batch:
    inner: Inner
    lengths: torch.Tensor
    extra: dict
    optional: torch.Tensor | None = None


def test_every_tensor_moves_and_the_rest_stays():
    batch = Batch(Inner(torch.ones(2, 3), ["u1", "u2"]), torch.tensor([3, 2]),
                  {"pair": Pair(torch.zeros(1), 7), "seq": [torch.ones(1), (torch.ones(2), "s")]})
    moved = to_device(batch, "meta")
    assert isinstance(moved, Batch) and isinstance(moved.inner, Inner) and isinstance(moved.extra["pair"], Pair)
    tensors = [moved.inner.x, moved.lengths, moved.extra["pair"].a, moved.extra["seq"][0], moved.extra["seq"][1][0]]
    assert all(t.device.type == "meta" for t in tensors)
    assert moved.inner.names == ["u1", "u2"] and moved.extra["pair"].b == 7 and moved.extra["seq"][1][1] == "s"
    assert moved.optional is None
    assert batch.lengths.device.type == "cpu"  # the input batch is not changed in place
    assert moved.inner.x.shape == (2, 3)
