"""TASLM: a text LM that also reads and writes one TASTE token per word (METHOD.md section 3).

Input fusion  e_t = softmax(w) . [Linear(TASTE vector_t), text_embedding(x_t)],  w initialised [-2, 2].
Variant "token": one linear head per RVQ codebook (cross-entropy). Variant "embed": mean + log-variance heads
over the summed TASTE vector (MSE + Gaussian NLL), the sample re-quantised by the tokenizer's RVQ.
Text loss = 0.9 KL(frozen text LM || model) + 0.1 CE; total = 0.5 text + 0.5 TASTE (weights in TASLMConfig).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taste.lm.adapters import AdapterSaving, lm_to_load
from taste.lm.patterns import IGNORE
from taste.training.saved_model import SavedModel


@dataclass(frozen=True)
class TASLMConfig:
    variant: str = "token"  # token | embed
    n_q: int = 4
    codebook_size: int = 512
    taste_dim: int = 64  # dimension of the summed TASTE vector (tokenizer.codes_to_vectors)
    fusion_init: tuple[float, float] = (-2.0, 2.0)  # (TASTE, text): text-dominant at the start
    text_kl_weight: float = 0.9
    text_ce_weight: float = 0.1
    text_weight: float = 0.5
    taste_weight: float = 0.5
    delay: int = 1
    lora_r: int = 0  # 0 = full fine-tuning; > 0 = peft LoRA adapters on the LM
    lora_alpha: int = 128

    def __post_init__(self):
        if self.variant not in ("token", "embed"):
            raise ValueError(f"TASLM variant must be 'token' or 'embed', got {self.variant!r}")


def debug_config(variant: str = "token") -> TASLMConfig:
    return TASLMConfig(variant=variant, n_q=2, codebook_size=16, taste_dim=16)


@dataclass
class TASLMOutput:
    text_logits: Tensor  # [B, T, V]
    hidden: Tensor  # [B, T, d]
    cache: object | None  # transformers Cache for KV-cached decoding


def causal_lm(lm):
    """The LlamaForCausalLM under an optional peft wrapper (LoRA layers are injected in place)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


class TASLM(AdapterSaving, SavedModel, nn.Module):
    saved_name = "TASLM"

    def __init__(self, lm, config: TASLMConfig, keep_reference: bool = True):
        """lm: the pretrained LlamaForCausalLM (peft-wrapped when config.lora_r > 0).

        keep_reference: keep a frozen copy of the pretrained LM for the KL text loss (full fine-tuning only;
        a LoRA model uses itself with adapters disabled). Taken now, before any training step changes lm.
        """
        super().__init__()
        self.config = config
        self.lm = lm
        self._frozen_lm = None
        if keep_reference and not hasattr(lm, "disable_adapter"):
            frozen = copy.deepcopy(lm).eval().requires_grad_(False)
            object.__setattr__(self, "_frozen_lm", frozen)  # not a submodule: never trained, never saved
        d = causal_lm(lm).config.hidden_size
        self.taste_in = nn.Linear(config.taste_dim, d)
        self.fusion = nn.Parameter(torch.tensor(config.fusion_init, dtype=torch.float32))  # (TASTE, text)
        if config.variant == "token":
            self.code_heads = nn.ModuleList(nn.Linear(d, config.codebook_size) for _ in range(config.n_q))
        else:
            self.mean_head = nn.Linear(d, config.taste_dim)
            self.logvar_head = nn.Linear(d, config.taste_dim)

    def _apply(self, fn, *args, **kwargs):
        """.to()/.cuda()/.half() also move the frozen reference LM (kept out of the submodules: not saved)."""
        super()._apply(fn, *args, **kwargs)
        if self._frozen_lm is not None:
            self._frozen_lm._apply(fn, *args, **kwargs)
        return self

    def fusion_weights(self) -> Tensor:
        return torch.softmax(self.fusion, dim=0)

    def embed(self, input_ids: Tensor, taste_vectors: Tensor, has_taste: Tensor) -> Tensor:
        """input_ids: [B, T]; taste_vectors: [B, T, D]; has_taste: Bool[B, T] -> inputs_embeds [B, T, d]."""
        text = causal_lm(self.lm).get_input_embeddings()(input_ids)
        taste = self.taste_in(taste_vectors.to(text.dtype)) * has_taste.unsqueeze(-1).to(text.dtype)
        w = self.fusion_weights().to(text.dtype)
        return w[0] * taste + w[1] * text

    def forward(self, input_ids, taste_vectors, has_taste, attention_mask=None, cache=None, use_cache=False):
        base = causal_lm(self.lm)
        out = base.model(
            inputs_embeds=self.embed(input_ids, taste_vectors, has_taste),
            attention_mask=attention_mask,
            cache=cache,
            use_cache=use_cache,
        )
        h = out.last_hidden_state  # (B, T, d)
        return TASLMOutput(base.lm_head(h), h, out.cache if use_cache else None)

    def code_logits(self, hidden: Tensor) -> Tensor:
        """hidden: [..., d] -> [..., n_q, codebook_size] (token variant)."""
        return torch.stack([head(hidden) for head in self.code_heads], dim=-2)

    def vector_stats(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """hidden: [..., d] -> (mean [..., D], logvar [..., D]) (embed variant)."""
        return self.mean_head(hidden), self.logvar_head(hidden).clamp(-8.0, 4.0)

    def reference_logits(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        """Text-only logits of the frozen pretrained LM: the adapters switched off (LoRA) or a frozen copy."""
        with torch.no_grad(), self._reference() as ref:
            return ref(input_ids=input_ids, attention_mask=attention_mask).logits

    @contextlib.contextmanager
    def _reference(self):
        if hasattr(self.lm, "disable_adapter"):
            with self.lm.disable_adapter():
                yield self.lm
            return
        if self._frozen_lm is None:
            raise RuntimeError("TASLM has no frozen reference LM: build it with keep_reference=True to train")
        yield self._frozen_lm

    # ---- save / load (taste.training.saved_model.SavedModel: config.json + model.safetensors; with LoRA the
    # adapters and heads only, taste.lm.adapters) ---------------------------------------------------------------
    def config_payload(self) -> dict:
        return {"taslm": asdict(self.config), "llama": causal_lm(self.lm).config.to_dict(), **self.base_payload()}

    @classmethod
    def from_payload(cls, payload: dict, directory: Path, base_lm=None) -> "TASLM":
        """base_lm: the text LM a LoRA TASLM was fine-tuned from (unused for a fully fine-tuned one)."""
        t = payload["taslm"]
        config = TASLMConfig(**{**t, "fusion_init": tuple(t["fusion_init"])})
        lm = lm_to_load(payload, config.lora_r, config.lora_alpha, base_lm, directory, cls.saved_name)
        return cls(lm, config, keep_reference=False)


# ---- losses --------------------------------------------------------------------------------------------
def text_kl(logits: Tensor, ref_logits: Tensor, mask: Tensor) -> Tensor:
    """Mean over masked positions of KL(p_ref || p_model). logits, ref_logits: [B, T, V]; mask: Bool[B, T]."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(ref_logits.float(), dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (B, T)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def token_loss(model: TASLM, hidden: Tensor, target_codes: Tensor) -> Tensor:
    """Cross-entropy of each codebook head at positions that predict a word's codes. target: [B, T, n_q]."""
    logits = model.code_logits(hidden)  # (B, T, n_q, K)
    return F.cross_entropy(logits.flatten(0, 2).float(), target_codes.flatten(), ignore_index=IGNORE)


def embed_loss(model: TASLM, hidden: Tensor, target_vectors: Tensor, has_target: Tensor) -> tuple[Tensor, Tensor]:
    """(MSE of the mean, Gaussian NLL of the variance given the detached mean) over target positions."""
    mean, logvar = model.vector_stats(hidden[has_target])  # (M, D)
    target = target_vectors[has_target].to(mean.dtype)
    mse = F.mse_loss(mean, target)
    # The variance head learns the spread of the target around the (detached) mean: a KL-style fit.
    nll = 0.5 * (logvar + (target - mean.detach()) ** 2 * torch.exp(-logvar)).mean()
    return mse, nll


def taslm_loss(model: TASLM, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """loss_fn for taste.training.train on a collate_taslm batch."""
    cfg = model.config
    out = model(batch["input_ids"], batch["taste_vectors"], batch["has_taste"], batch["attention_mask"])
    labels = batch["next_ids"]
    mask = labels != IGNORE
    ce = F.cross_entropy(out.text_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    kl = text_kl(out.text_logits, model.reference_logits(batch["input_ids"], batch["attention_mask"]), mask)
    text = cfg.text_kl_weight * kl + cfg.text_ce_weight * ce
    logs = {"text_ce": float(ce.detach()), "text_kl": float(kl.detach())}
    if cfg.variant == "token":
        taste = token_loss(model, out.hidden, batch["target_codes"])
        logs["taste_ce"] = float(taste.detach())
    else:
        mse, nll = embed_loss(model, out.hidden, batch["target_vectors"], batch["has_target"])
        taste = mse + nll
        logs.update(taste_mse=float(mse.detach()), taste_nll=float(nll.detach()))
    loss = cfg.text_weight * text + cfg.taste_weight * taste
    logs["fusion_taste"] = float(model.fusion_weights()[0].detach())
    return loss, logs
