"""Saving LoRA fine-tuned LMs (TASLM, the S3-unit LM) as their adapters and heads, over a base LM saved elsewhere.

With `lm.taslm.finetune: lora` (the paper profile: Llama-3.2-1B) the base LM's weights stay frozen, so a saved model
holds only what training changed: the LoRA adapters, TASLM's fusion, input projection and TASTE heads (or the S3-unit
LM's unit embedding and head), and a digest of the base weights. Loading it takes the base LM as an argument
(`TASLM.from_pretrained(folder, base_lm=text_lm)`, as peft's `PeftModel.from_pretrained(base, folder)` does) and
refuses a base whose weights differ from the one the adapters were trained on. A fully fine-tuned model (`finetune:
full`, the default profile) saves its whole state as before and needs no base.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import torch

from taste.training.saved_model import SavedModelError

BASE_DIGEST_KEY = "base_lm_digest"


def is_base_tensor(name: str) -> bool:
    """A tensor of the frozen base LM inside the model's state (under `lm.`, not a LoRA adapter)."""
    return name.startswith("lm.") and "lora_" not in name


def base_digest(lm) -> str:
    """sha256 over the base weights of a LoRA-wrapped LM (its adapters left out): identifies the base it wraps.

    Names are taken without peft's wrapping (`base_model.model.` and `.base_layer`), so the digest is the base
    Llama's own; each tensor is hashed in place (no copy of a billion-parameter model)."""
    h = hashlib.sha256()
    for name, tensor in sorted(lm.state_dict().items()):
        if "lora_" in name:
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        t = tensor.detach().cpu().contiguous()
        h.update(f"{plain}:{tuple(t.shape)}:{t.dtype};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


class AdapterSaving:
    """Mixin for a SavedModel with a `config` (lora_r, lora_alpha) and an `lm` (peft-wrapped when lora_r > 0)."""

    def saved_keys(self) -> set[str] | None:
        if self.config.lora_r == 0:  # type: ignore[attr-defined]
            return None
        return {k for k in self.state_dict() if not is_base_tensor(k)}  # type: ignore[attr-defined]

    def base_payload(self) -> dict[str, Any]:
        """The entry config.json needs to check the base LM at load time (nothing for a fully fine-tuned model)."""
        return {BASE_DIGEST_KEY: base_digest(self.lm)} if self.config.lora_r > 0 else {}  # type: ignore[attr-defined]


def build_lm_from_dict(llama: dict, lora_r: int = 0, lora_alpha: int = 128):
    """Rebuild the (optionally LoRA-wrapped) Llama skeleton from a saved config dict; weights load afterwards."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from taste.lm.text_lm import apply_lora

    lm = LlamaForCausalLM(LlamaConfig.from_dict(llama))
    return apply_lora(lm, lora_r, lora_alpha) if lora_r > 0 else lm


def lm_to_load(payload: dict[str, Any], lora_r: int, lora_alpha: int, base_lm, folder: Path, what: str):
    """The LM a saved model's weights load into: a fresh skeleton (whole state saved), or a copy of `base_lm` with
    fresh adapters (adapters saved; the base must be the one they were trained on)."""
    if lora_r == 0:
        return build_lm_from_dict(payload["llama"], 0, lora_alpha)
    from taste.lm.text_lm import apply_lora

    if base_lm is None:
        raise SavedModelError(f"{folder}: this {what} holds LoRA adapters only; load it with base_lm= the text LM "
                              f"it was fine-tuned from (stage lm_pretrain's text_lm)")
    if BASE_DIGEST_KEY not in payload:
        raise SavedModelError(f"{folder}: this LoRA {what} has no {BASE_DIGEST_KEY} in its config: it was saved "
                              f"before adapter-only saving (rerun the stage that trains it)")
    lm = apply_lora(copy.deepcopy(base_lm), lora_r, lora_alpha)
    if base_digest(lm) != payload[BASE_DIGEST_KEY]:
        raise SavedModelError(f"{folder}: the base LM given is not the one this {what}'s LoRA adapters were "
                              f"trained on (its weights differ)")
    return lm
