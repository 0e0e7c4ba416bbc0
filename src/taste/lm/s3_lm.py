"""The paper's "Baseline (S3 token)": the pretrained text LM over the 25 Hz unit stream.

Each position sums a unit embedding and a text-token embedding, the transcript padded to the unit length
(text runs ahead of the speech it belongs to: the length mismatch TASLM removes). Two heads: next unit, next text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taste.lm.adapters import AdapterSaving, lm_to_load
from taste.lm.patterns import IGNORE
from taste.lm.taslm import causal_lm
from taste.training.saved_model import SavedModel


@dataclass(frozen=True)
class S3LMConfig:
    n_units: int = 512  # unit ids 0..n_units-1; n_units = unit bos, n_units + 1 = unit eos
    text_weight: float = 0.5
    unit_weight: float = 0.5
    lora_r: int = 0
    lora_alpha: int = 128

    @property
    def unit_bos(self) -> int:
        return self.n_units

    @property
    def unit_eos(self) -> int:
        return self.n_units + 1


def debug_config() -> S3LMConfig:
    return S3LMConfig(n_units=16)


class S3UnitLM(AdapterSaving, SavedModel, nn.Module):
    saved_name = "S3-unit LM"

    def __init__(self, lm, config: S3LMConfig):
        super().__init__()
        self.config = config
        self.lm = lm
        d = causal_lm(lm).config.hidden_size
        self.unit_embedding = nn.Embedding(config.n_units + 2, d)
        self.unit_head = nn.Linear(d, config.n_units + 2)
        nn.init.normal_(self.unit_embedding.weight, std=0.02)

    def forward(self, unit_ids: Tensor, text_ids: Tensor, attention_mask=None, cache=None, use_cache=False):
        """unit_ids, text_ids: [B, L] -> (unit_logits [B, L, n_units+2], text_logits [B, L, V], past)."""
        base = causal_lm(self.lm)
        embeds = base.get_input_embeddings()(text_ids) + self.unit_embedding(unit_ids)
        out = base.model(inputs_embeds=embeds, attention_mask=attention_mask,
                         cache=cache, use_cache=use_cache)
        h = out.last_hidden_state
        return self.unit_head(h), base.lm_head(h), (out.cache if use_cache else None)

    # ---- save / load (taste.training.saved_model.SavedModel: config.json + model.safetensors; with LoRA the
    # adapters and heads only, taste.lm.adapters) ---------------------------------------------------------------
    def config_payload(self) -> dict:
        return {"s3_lm": asdict(self.config), "llama": causal_lm(self.lm).config.to_dict(), **self.base_payload()}

    @classmethod
    def from_payload(cls, payload: dict, directory: Path, base_lm=None) -> "S3UnitLM":
        """base_lm: the text LM a LoRA S3-unit LM was fine-tuned from (unused for a fully fine-tuned one)."""
        config = S3LMConfig(**payload["s3_lm"])
        return cls(lm_to_load(payload, config.lora_r, config.lora_alpha, base_lm, directory, cls.saved_name), config)


def s3_loss(model: S3UnitLM, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """loss_fn for taste.training.train on a collate_s3 batch: next-unit CE and next-text CE."""
    unit_logits, text_logits, _ = model(batch["unit_ids"], batch["text_ids"], batch["attention_mask"])
    unit_ce = F.cross_entropy(unit_logits.flatten(0, 1).float(), batch["next_units"].flatten(), ignore_index=IGNORE)
    text_ce = F.cross_entropy(text_logits.flatten(0, 1).float(), batch["next_text"].flatten(), ignore_index=IGNORE)
    cfg = model.config
    loss = cfg.unit_weight * unit_ce + cfg.text_weight * text_ce
    return loss, {"unit_ce": float(unit_ce.detach()), "text_ce": float(text_ce.detach())}
