"""Stages 03a (lm_pretrain) and 03 (taslm, training half) as functions over the params dict.

Stage lm_pretrain trains what does not depend on the TASTE tokenizer: the text LM (pretrain_text_lm) and the S3-unit
LM baseline (train_s3_lm), into models/lm_pretrain/{text_lm,s3_lm} (under shared.paths.models), so a tokenizer change
does not retrain them. Stage taslm loads that text LM (load_text_lm) and fine-tunes the TASLM variants (train_taslm)
into models/lm/{taslm_token,taslm_embed}. Resumable training runs (checkpoints, history.jsonl) go to
outputs/<stage>/training/<name>/<key>, one folder per fingerprint (taste.training.checkpoint.fresh_run_dir): each
run's fingerprint holds its settings, a digest of the exact items it learns from (text blocks; transcripts with TASTE
codes and vectors; unit streams), the weights it starts from (base LM, TASTE tokenizer) and the study's code, so a
rerun after an upstream stage or the code changed trains afresh in a new folder instead of resuming a finished run on
stale inputs (those folders are not DVC outputs: `dvc repro` keeps them). Each training reports the peak memory of
its own run (taste.training.memory), and run_metrics / text_lm_metrics turn a run into its entry of the stage's metrics.json.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from taste.data.records import read_manifest
from taste.lm import text_lm as tl
from taste.lm.data import S3Dataset, TASLMDataset, collate_s3, collate_taslm, load_code_table
from taste.lm.s3_lm import S3LMConfig, S3UnitLM, s3_loss
from taste.lm.taslm import TASLM, TASLMConfig, taslm_loss
from taste.training import TrainResult, train
from taste.training.checkpoint import code_digest, dataset_digest, fresh_run_dir, module_digest
from taste.training.loop import train_config
from taste.training.memory import RESUMED_FINISHED, OwnPeakTrainResult, train_with_own_peak

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "lm_vocab.json"
PRETRAINED_FILE = "pretrained_path.txt"  # the text LM is a local pretrained Llama (paper profile)
PRETRAIN_STAGE = "lm_pretrain"  # the stage that trains the text LM and the S3-unit LM (notebooks/03a_lm_pretrain)
PRETRAIN_MODELS = ("text_lm", "s3_lm")


def lm_dir(params: dict[str, Any]) -> Path:
    """models/lm: stage taslm's TASLM variants (taslm_<variant>)."""
    return Path(params["shared"]["paths"]["models"]) / "lm"


def pretrain_dir(params: dict[str, Any]) -> Path:
    """<shared.paths.models>/lm_pretrain: stage lm_pretrain's text LM and S3-unit LM (the folder dvc.yaml names)."""
    return Path(params["shared"]["paths"]["models"]) / PRETRAIN_STAGE


def text_lm_dir(params: dict[str, Any]) -> Path:
    """The trained text LM (its tokenizer.json and lm_vocab.json beside it), written by stage lm_pretrain."""
    return pretrain_dir(params) / "text_lm"


def s3_lm_dir(params: dict[str, Any]) -> Path:
    """The trained S3-unit LM, written by stage lm_pretrain."""
    return pretrain_dir(params) / "s3_lm"


def run_dir(params: dict[str, Any], name: str) -> Path:
    """Base folder of a model's training runs (one subfolder per fingerprint, fresh_run_dir), under the outputs of
    the stage that trains it (text_lm, s3_lm: lm_pretrain; the TASLM variants: taslm); outside models/ so DVC does
    not cache optimizer states."""
    stage = PRETRAIN_STAGE if name in PRETRAIN_MODELS else "taslm"
    return Path(params["shared"]["paths"]["outputs"]) / stage / "training" / name


def load_lm_tokenizer(params: dict[str, Any]):
    """The LM's subword tokenizer: the local Llama's own (paper profile) or the study's BPE (models/asr)."""
    from tokenizers import Tokenizer

    from taste.asr.bpe import load_bpe

    pretrained = params["lm"]["text_lm"]["pretrained_path"]
    if pretrained:
        path = Path(pretrained) / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the local Llama folder has no tokenizer.json")
        return Tokenizer.from_file(str(path))
    return load_bpe(Path(params["shared"]["paths"]["models"]) / "asr")


def text_lm_config(params: dict[str, Any], vocab: tl.LMVocab) -> tl.TextLMConfig:
    t = params["lm"]["text_lm"]
    return tl.TextLMConfig(vocab_size=vocab.size, d_model=t["d_model"], layers=t["layers"], n_heads=t["n_heads"],
                           ffn_dim=t["ffn_dim"], context=t["context"])


@dataclass
class TextLMRun:
    model: Any
    tokenizer: Any
    vocab: tl.LMVocab
    result: OwnPeakTrainResult | None
    heldout_ppl: float
    heldout_tokens: int


def pretrain_text_lm(params: dict[str, Any], progress: bool = True) -> TextLMRun:
    """Pretrain the small Llama on the text pool (or load the local Llama); held-out perplexity on unseen stories."""
    tok = load_lm_tokenizer(params)
    vocab = tl.LMVocab.for_tokenizer(tok)
    t = params["lm"]["text_lm"]
    stories = tl.read_text_pool(Path(params["shared"]["paths"]["raw"]) / "text_pool.txt")
    train_stories, held = tl.split_stories(stories, t["heldout_share"], params["shared"]["seed"])
    held_ds = tl.PackedTextDataset(tok, held, vocab, t["context"])
    out = text_lm_dir(params)
    result = None
    out.mkdir(parents=True, exist_ok=True)
    if t["pretrained_path"]:
        model = tl.load_pretrained_llama(t["pretrained_path"])
        (out / PRETRAINED_FILE).write_text(str(t["pretrained_path"]))  # not copied: gigabytes, already local
    else:
        (out / PRETRAINED_FILE).unlink(missing_ok=True)
        cfg, tcfg = text_lm_config(params, vocab), train_config(t, params)
        torch.manual_seed(params["shared"]["seed"])
        model = tl.build_text_lm(cfg, vocab)
        data = tl.PackedTextDataset(tok, train_stories, vocab, t["context"])
        fingerprint = {"model": cfg, "tokenizer": hashlib.sha256(tok.to_str().encode()).hexdigest(),
                       "n": len(data), "data": dataset_digest(data), "code": code_digest()}
        rdir = fresh_run_dir(run_dir(params, "text_lm"), tcfg, fingerprint)
        result = train_with_own_peak(train, model, data, tl.collate_blocks, tl.text_lm_loss, tcfg, rdir,
                                     progress=progress, fingerprint=fingerprint)
        tl.save_text_lm(model, out)
    tok.save(str(out / TOKENIZER_FILE))
    (out / VOCAB_FILE).write_text(json.dumps(asdict(vocab)))
    ppl = tl.perplexity(model, held_ds, max_blocks=t["heldout_blocks"])
    return TextLMRun(model, tok, vocab, result, ppl, held_ds.n_tokens)


def load_text_lm(directory: str | Path):
    """(model, tokenizer, vocab) saved by pretrain_text_lm (a pretrained Llama folder keeps its own weights)."""
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    d = Path(directory)
    if not (d / VOCAB_FILE).is_file():
        raise FileNotFoundError(f"{d / VOCAB_FILE}: missing (run the {PRETRAIN_STAGE} stage)")
    vocab = tl.LMVocab(**json.loads((d / VOCAB_FILE).read_text()))
    if (d / PRETRAINED_FILE).is_file():
        model = tl.load_pretrained_llama((d / PRETRAINED_FILE).read_text().strip()).eval()
    else:
        model = LlamaForCausalLM.from_pretrained(d, local_files_only=True).eval()
    return model, Tokenizer.from_file(str(d / TOKENIZER_FILE)), vocab


def _lora(params: dict[str, Any]) -> tuple[int, int]:
    t = params["lm"]["taslm"]
    if t["finetune"] not in ("full", "lora"):
        raise ValueError(f"params lm.taslm.finetune must be 'full' or 'lora', got {t['finetune']!r}")
    return (t["lora_r"], t["lora_alpha"]) if t["finetune"] == "lora" else (0, t["lora_alpha"])


def _fresh_lm(base, lora_r: int, lora_alpha: int):
    """A trainable copy of the pretrained LM (full fine-tuning) or the LM wrapped with fresh LoRA adapters."""
    import copy

    lm = copy.deepcopy(base).train().requires_grad_(True)
    return tl.apply_lora(lm, lora_r, lora_alpha) if lora_r > 0 else lm


def taslm_config(params: dict[str, Any], variant: str, n_q: int, taste_dim: int, codebook_size: int) -> TASLMConfig:
    """TASLM settings from params; the RVQ shape (n_q, codebook size, vector dim) comes from the trained tokenizer."""
    t = params["lm"]["taslm"]
    r, alpha = _lora(params)
    return TASLMConfig(variant=variant, n_q=n_q, codebook_size=codebook_size,
                       taste_dim=taste_dim, fusion_init=tuple(t["fusion_init"]), text_kl_weight=t["text_kl_weight"],
                       text_ce_weight=t["text_ce_weight"], text_weight=t["text_weight"],
                       taste_weight=t["taste_weight"], lora_r=r, lora_alpha=alpha)


def taslm_codes_dir(params: dict[str, Any]) -> Path:
    """Where the tokenizer stage wrote the TASTE codes: params shared.paths.taste_codes."""
    return Path(params["shared"]["paths"]["taste_codes"])


def taslm_data(params: dict[str, Any], split: str, tok, vocab: tl.LMVocab, taste,
               codes_dir: str | Path | None = None) -> TASLMDataset:
    """A split's transcripts with their TASTE codes (<codes_dir>/<split>.safetensors; codes_dir defaults to
    taslm_codes_dir(params))."""
    from taste.asr.bpe import word_ids

    codes_dir = Path(codes_dir) if codes_dir is not None else taslm_codes_dir(params)
    utts = read_manifest(Path(params["shared"]["paths"]["prepared"]) / f"{split}.jsonl")
    codes = load_code_table(codes_dir / f"{split}.safetensors")
    return TASLMDataset(utts, codes, tok, vocab, taste.codes_to_vectors, word_ids,
                        max_len=params["lm"]["text_lm"]["context"])


@torch.no_grad()
def heldout_loss(model, dataset, collate, loss_fn, batch_size: int = 16, max_items: int = 256) -> dict[str, float]:
    """Mean of loss_fn's logged values over (up to max_items of) a held-out dataset."""
    model.eval()
    sums: dict[str, float] = {}
    n = min(len(dataset), max_items)
    batches = 0
    for start in range(0, n, batch_size):
        loss, logs = loss_fn(model, collate([dataset[i] for i in range(start, min(n, start + batch_size))]))
        for k, v in {"loss": float(loss), **logs}.items():
            sums[k] = sums.get(k, 0.0) + v
        batches += 1
    return {k: v / max(batches, 1) for k, v in sums.items()}


def train_taslm(params: dict[str, Any], variant: str, base_lm, tok, vocab: tl.LMVocab, taste,
                progress: bool = True, codes_dir: str | Path | None = None
                ) -> tuple[TASLM, OwnPeakTrainResult, dict[str, float]]:
    """Fine-tune one TASLM variant on the train split's TASTE codes (in `codes_dir`, by default
    taslm_codes_dir(params)); returns (model, training result, dev losses)."""
    train_ds = taslm_data(params, "train", tok, vocab, taste, codes_dir)
    dev_ds = taslm_data(params, "dev", tok, vocab, taste, codes_dir)
    ex = train_ds[0]
    cfg = taslm_config(params, variant, ex.target_codes.shape[1], ex.taste_vectors.shape[1],
                       taste.cfg.rvq.codebook_size)
    tcfg = train_config(params["lm"]["taslm"], params)
    torch.manual_seed(params["shared"]["seed"])
    model = TASLM(_fresh_lm(base_lm, cfg.lora_r, cfg.lora_alpha), cfg)
    fingerprint = {"model": cfg, "base": module_digest(base_lm), "taste": module_digest(taste),
                   "n": len(train_ds), "data": dataset_digest(train_ds), "code": code_digest()}
    rdir = fresh_run_dir(run_dir(params, f"taslm_{variant}"), tcfg, fingerprint)
    collate = partial(collate_taslm, pad_id=vocab.pad)
    result = train_with_own_peak(train, model, train_ds, collate, taslm_loss, tcfg, rdir, progress=progress,
                                 fingerprint=fingerprint, lengths=[len(x.input_ids) for x in train_ds.examples])
    model.save_pretrained(lm_dir(params) / f"taslm_{variant}")
    return model, result, heldout_loss(model, dev_ds, collate, taslm_loss)


def s3_data(params: dict[str, Any], split: str, tok, vocab: tl.LMVocab) -> S3Dataset:
    utts = read_manifest(Path(params["shared"]["paths"]["prepared"]) / f"{split}.jsonl")
    units = load_code_table(Path(params["shared"]["paths"]["units"]) / f"{split}.safetensors")
    return S3Dataset(utts, units, tok, vocab, params["units"]["codebook_size"],
                     max_len=params["lm"]["s3_lm"]["max_units"])


def train_s3_lm(params: dict[str, Any], base_lm, tok, vocab: tl.LMVocab, progress: bool = True
                ) -> tuple[S3UnitLM, OwnPeakTrainResult, dict[str, float]]:
    """The S3-unit baseline: same pretrained LM, same speech, same fine-tuning mode and budget as TASLM."""
    r, alpha = _lora(params)
    cfg = S3LMConfig(n_units=params["units"]["codebook_size"], lora_r=r, lora_alpha=alpha)
    train_ds, dev_ds = s3_data(params, "train", tok, vocab), s3_data(params, "dev", tok, vocab)
    tcfg = train_config(params["lm"]["s3_lm"], params)
    torch.manual_seed(params["shared"]["seed"])
    model = S3UnitLM(_fresh_lm(base_lm, r, alpha), cfg)
    fingerprint = {"model": cfg, "base": module_digest(base_lm), "n": len(train_ds), "data": dataset_digest(train_ds),
                   "code": code_digest()}
    rdir = fresh_run_dir(run_dir(params, "s3_lm"), tcfg, fingerprint)
    collate = partial(collate_s3, pad_id=vocab.pad, n_units=cfg.n_units)
    result = train_with_own_peak(train, model, train_ds, collate, s3_loss, tcfg, rdir, progress=progress,
                                 fingerprint=fingerprint, lengths=[len(x.unit_ids) for x in train_ds.examples])
    model.save_pretrained(s3_lm_dir(params))
    return model, result, heldout_loss(model, dev_ds, collate, s3_loss)



def text_lm_metrics(run: TextLMRun) -> dict[str, Any]:
    """The text LM's entry of stage lm_pretrain's metrics.json: size, held-out perplexity and, when it was trained
    here (not loaded from lm.text_lm.pretrained_path), its training (run_metrics)."""
    r = run.result
    return {"parameters_m": round(sum(p.numel() for p in run.model.parameters()) / 1e6, 2),
            "heldout_perplexity": round(run.heldout_ppl, 2), "heldout_tokens": run.heldout_tokens,
            "final_train_loss": round(r.history[-1]["loss"], 4) if r and r.history else None,
            "train_wall_s": round(r.wall_time_s, 1) if r else 0.0,
            "train_peak_memory_mb": round(r.peak_memory_mb, 1) if r else None,
            **(run_metrics(r) if r else {})}


def run_metrics(result: TrainResult, dev: dict[str, float] | None = None) -> dict[str, Any]:
    """A trained model's entry of a stage's metrics.json: the last logged training values (step and lr left out),
    wall time, peak memory and its scope ("model": this run's own; "process": the process's peak so far, where it
    could not be sampled; "not trained in this run": a finished run was found again, so no wall time or peak of its
    training is known here and both are null), the step it resumed from, and the dev losses when given."""
    last = result.history[-1] if result.history else {}
    scope = getattr(result, "peak_memory_scope", "process")
    trained = scope != RESUMED_FINISHED
    out: dict[str, Any] = {
        "final_train": {k: round(v, 4) for k, v in last.items() if k not in ("step", "lr")},
        "train_wall_s": round(result.wall_time_s, 1) if trained else None,
        "train_peak_memory_mb": round(result.peak_memory_mb, 1) if trained else None,
        "train_peak_memory_scope": scope, "resumed_from_step": result.resumed_from,
    }
    if dev is not None:
        out["dev"] = {k: round(v, 4) for k, v in dev.items()}
    return out
