"""taste.training.saved_model: the one save / load of the study's model classes (issue 14)."""

import json
from dataclasses import asdict, dataclass

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from taste.training.saved_model import CONFIG_FILE, WEIGHTS_FILE, SavedModel, SavedModelError


class TinyError(ValueError):
    pass


@dataclass
class TinyConfig:
    dim: int = 3
    tie: bool = False


class Tiny(SavedModel, nn.Module):
    saved_name, load_error = "tiny model", TinyError

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(5, cfg.dim)
        self.head = nn.Linear(cfg.dim, 5, bias=False)
        if cfg.tie:
            self.head.weight = self.embed.weight
        self.register_buffer("count", torch.zeros(()))

    def config_payload(self) -> dict:
        return asdict(self.cfg)

    @classmethod
    def from_payload(cls, payload: dict, directory) -> "Tiny":
        return cls(TinyConfig(**payload))


@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_keeps_config_weights_buffers_and_ties(tmp_path, tie):
    torch.manual_seed(0)
    model = Tiny(TinyConfig(dim=4, tie=tie))
    model.count += 7
    model.train()
    assert model.save_pretrained(tmp_path / "m") == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary left
    assert json.loads((tmp_path / "m" / CONFIG_FILE).read_text()) == {"dim": 4, "tie": tie}
    loaded = Tiny.from_pretrained(tmp_path / "m")
    assert not loaded.training and loaded.cfg == model.cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert (loaded.head.weight is loaded.embed.weight) == tie
    stored = load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    assert len(stored) == (2 if tie else 3)  # a tied tensor is stored once


def test_missing_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'none' / CONFIG_FILE}.*tiny model"):
        Tiny.from_pretrained(tmp_path / "none")
    Tiny(TinyConfig()).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        Tiny.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("config_text, message", [
    ("{not json", "bad tiny model config"),
    ("[1, 2]", "not a JSON object"),
    ('{"dim": 3, "colour": "red"}', "bad tiny model config"),
])
def test_a_bad_config_is_the_class_error_naming_the_file(tmp_path, config_text, message):
    Tiny(TinyConfig()).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / CONFIG_FILE).write_text(config_text)
    with pytest.raises(TinyError, match=message) as info:
        Tiny.from_pretrained(tmp_path / "m")
    assert str(tmp_path / "m" / CONFIG_FILE) in str(info.value)


def test_weights_of_another_config_are_refused(tmp_path):
    Tiny(TinyConfig(dim=3)).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / CONFIG_FILE).write_text(json.dumps({"dim": 6, "tie": False}))
    with pytest.raises(TinyError, match="weights do not match config"):
        Tiny.from_pretrained(tmp_path / "m")


def test_the_default_error_is_a_value_error():
    assert issubclass(SavedModel.load_error, ValueError) and SavedModel.load_error is SavedModelError


class HeadOnly(Tiny):
    """A model whose weights file holds its head only; the embedding comes from the caller (like LoRA adapters over a
    base LM saved elsewhere)."""

    def saved_keys(self):
        return {"head.weight"}

    @classmethod
    def from_payload(cls, payload: dict, directory, embed: nn.Embedding | None = None) -> "HeadOnly":
        model = cls(TinyConfig(**payload))
        model.embed.load_state_dict(embed.state_dict())
        return model


def test_a_partial_state_saves_its_keys_and_loads_over_parts_given(tmp_path):
    torch.manual_seed(0)
    model = HeadOnly(TinyConfig(dim=4))
    model.save_pretrained(tmp_path / "m")
    assert set(load_file(str(tmp_path / "m" / WEIGHTS_FILE))) == {"head.weight"}
    loaded = HeadOnly.from_pretrained(tmp_path / "m", embed=model.embed)
    assert torch.equal(loaded.head.weight, model.head.weight) and torch.equal(loaded.embed.weight, model.embed.weight)
    Tiny(TinyConfig(dim=4)).save_pretrained(tmp_path / "whole")  # a whole state where the head alone is expected
    with pytest.raises(TinyError, match=f"{WEIGHTS_FILE}.*do not match.*unexpected"):
        HeadOnly.from_pretrained(tmp_path / "whole", embed=model.embed)
