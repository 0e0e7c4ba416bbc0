"""One save / load for every model class of the study: a folder with config.json and model.safetensors.

`SavedModel` is a mixin for `nn.Module` subclasses. A subclass says what its config is (`config_payload()`, a
JSON-able dict) and how to build an untrained model from it (`from_payload(payload, directory)`); the mixin writes
the folder (the weights atomically, through a temporary file and a rename, with tied tensors stored once, as
safetensors' `save_model` does) and reads it back, with errors that name the file and what is wrong:
FileNotFoundError for a missing config or weights file, `load_error` (the subclass's ValueError) for a config that
does not parse or build, or weights that do not fit the config. Weights are safetensors only: nothing is unpickled.

A model whose weights file holds only part of its state (LoRA adapters and heads over a frozen base model that lives
elsewhere) says which tensors it saves (`saved_keys()`) and takes the rest from arguments of `from_pretrained`, which
it hands to `from_payload` (e.g. `TASLM.from_pretrained(folder, base_lm=text_lm)`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class SavedModelError(ValueError):
    """A saved model folder whose config or weights do not make a model of the class reading it."""


class SavedModel:
    """config.json + model.safetensors for an nn.Module: `save_pretrained(dir)` / `cls.from_pretrained(dir)`."""

    saved_name = "model"  # what the folder holds, in error messages ("unit tokenizer", "vocoder", ...)
    load_error: type[ValueError] = SavedModelError

    def config_payload(self) -> dict[str, Any]:
        """The JSON-able config that from_payload rebuilds the (untrained) model from."""
        raise NotImplementedError

    @classmethod
    def from_payload(cls, payload: dict[str, Any], directory: Path, **parts: Any) -> "SavedModel":
        """An untrained model of the saved config (directory: the folder, for parts saved beside the weights; parts:
        the keyword arguments of from_pretrained, for parts saved elsewhere)."""
        raise NotImplementedError

    def saved_keys(self) -> set[str] | None:
        """Names of the state tensors the weights file holds; None (the default): the whole state."""
        return None

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json and model.safetensors (atomically) into `directory` -> the folder."""
        from safetensors.torch import save_file, save_model

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(self.config_payload(), indent=2), encoding="utf-8")
        tmp = out / (WEIGHTS_FILE + ".tmp")
        keys = self.saved_keys()
        if keys is None:
            save_model(self, str(tmp), force_contiguous=True)  # type: ignore[arg-type]
        else:
            state = self.state_dict()  # type: ignore[attr-defined]
            save_file({k: state[k].detach().contiguous() for k in sorted(keys)}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, out / WEIGHTS_FILE)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **parts: Any):
        """The saved model, in eval mode. parts: what the class's from_payload needs beyond the folder (none for a
        model that saves its whole state)."""
        from safetensors.torch import load_file, load_model

        folder = Path(directory)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: {cls.saved_name} {path.name} not found (not a saved "
                                        f"{cls.saved_name} folder)")
        try:
            payload = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise cls.load_error(f"{config_path}: bad {cls.saved_name} config ({e})") from e
        if not isinstance(payload, dict):
            raise cls.load_error(f"{config_path}: bad {cls.saved_name} config (not a JSON object)")
        try:
            model = cls.from_payload(payload, folder, **parts)
        except (TypeError, KeyError) as e:
            raise cls.load_error(f"{config_path}: bad {cls.saved_name} config ({e!r})") from e
        try:
            keys = model.saved_keys()
            if keys is None:
                load_model(model, str(weights_path))  # type: ignore[arg-type]
            else:
                _load_part(model, load_file(str(weights_path)), keys)
        except RuntimeError as e:
            raise cls.load_error(f"{weights_path}: weights do not match config ({e})") from e
        return model.eval()  # type: ignore[attr-defined]


def _load_part(model, tensors: dict, keys: set[str]) -> None:
    """Load exactly the tensors `keys` names (the rest of the state came from elsewhere); RuntimeError otherwise."""
    missing, unexpected = sorted(keys - tensors.keys()), sorted(tensors.keys() - keys)
    if missing or unexpected:
        raise RuntimeError(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                           f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    model.load_state_dict(tensors, strict=False)
