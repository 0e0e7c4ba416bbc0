"""TASTE-tokenizer design variants, trained on the study's train split and scored on dev (never test): how the
tokenizer settings of params.yaml are chosen (issue 13: `tokenizer.duration_feature`).

    python benchmarks/tokenizer_variants_dev.py NAME '{"duration_feature": "attention_width"}' [--root .] [--threads 2]

The JSON overrides keys of params.yaml's `tokenizer` section (`train` overrides tokenizer.train, `rvq` / `decoder`
are merged key by key). Keys starting with "_" are the script's own:
  "_pretrained": "DIR"       measure this saved TasteTokenizer as it is (no training), e.g. the stage's baseline;
                             a no-VQ model is measured on its continuous word vectors (see ContinuousVectors), which
                             separates what the quantiser loses from what the aggregator and decoder never carried;
  "_text_only_from": "DIR"   start from this saved text-only sub-stage (the text-only stage trains the unit decoder
                             alone, without the aggregator, so a variant that only changes the aggregator starts from
                             the baseline's exact text-only decoder) and train no-VQ -> RVQ with the stage's schedule;
  "_init_from": "DIR"        start from every weight of this saved RVQ tokenizer and train only the RVQ sub-stage for
                             tokenizer.train.rvq_steps (a cheap fine-tune; compare it with the same fine-tune of the
                             baseline's own settings, not with the untouched baseline);
  "_items_cache": "FILE"     cache the train split's items there (built once, shared by variants run side by side);
  "_no_location_prior": true train without the aggregator's location prior (every layer's prior weight fixed at
                             softplus(-30) ~ 0 and frozen), a design question the stage has no switch for yet;
  "_length_rule": "mean"     with the decoder's length head (decoder.length_head), give each generated word the
                             rounded mean ("mean") or geometric mean ("mean_log") of the head's count distribution
                             instead of its median (see use_length_rule; the stage has no switch for it yet); usually
                             with "_pretrained", so the rules are compared on one trained model.
--root is a checkout whose prepare, units, asr and vocoder stages have run (its data and models are only read).
Each variant trains in <runs>/<NAME> (resumable sub-stages, like the stage) and prints one JSON line with the swap
stage's dev edited set (`swap.edited.dev_bases` dev recordings, word j = the middle word, stretched or pitch-shifted:
retention, transfer, control with 95% CIs), the tokenizer's teacher-forced unit accuracy on dev and, for an RVQ model,
its duration consistency on dev (generated word durations within 25 / 50 ms of the ground truth, utterance-bootstrap
CIs, as the stage's reconstruction table measures it on test).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from _common import dev_variant_args, override_section
from taste.data.loaders import FeatureStore
from taste.data.prepare import pitch_config
from taste.data.records import read_manifest
from taste.data.validate import read_speech
from taste.swap.edit import edit_settings_from_params
from taste.swap.edited_set import measure_edited_set, middle_word_bases
from taste.swap.slope import local_slope_frame, slope_settings_from_params
from taste.swap.study import settings_from_params
from taste.tokenizer import pipeline as P
from taste.tokenizer.evaluate import (attention_in_span, boundary_durations_by_utterance, consistency_with_ci,
                                      reconstruct, teacher_forced_accuracy)
from taste.tokenizer.model import WEIGHTS_FILE, TasteTokenizer
from taste.tokenizer.train import StageSteps, train_all
from taste.vocoder import UnitVocoder
from taste.vocoder.pipeline import mel_config


def variant_paths(root: Path, params: dict, runs: Path) -> P.StagePaths:
    """Inputs from --root, every output under runs (the root's models/taste is never written)."""
    p = params["shared"]["paths"]
    models = root / p["models"]
    return P.StagePaths(root / p["prepared"], root / p["units"], models / "asr", models / "vocoder", runs,
                        runs / "tokenizer", runs / "taste_codes", models / "units", root)


def train_items(model: TasteTokenizer, params: dict, paths: P.StagePaths, cache: Path | None) -> list:
    """The train split's items; with a cache file, built once and shared by every variant (float16 encoder states,
    as the stage's parallel ablations use them), so variants trained side by side see identical inputs."""
    from taste.tokenizer.data import load_items, save_items

    if cache is None:
        return P.split_items(model, params, paths, "train")
    if cache.suffix != ".safetensors":
        raise SystemExit(f"_items_cache {cache}: name it *.safetensors (save_items writes the states there and a "
                         f".json sidecar beside it)")
    if not cache.is_file():
        tmp = cache.with_name(cache.stem + ".partial.safetensors")
        save_items(tmp, P.split_items(model, params, paths, "train"))
        for f in tmp.parent.glob(tmp.stem + "*"):
            f.rename(f.with_name(f.name.replace(".partial", "")))
    return load_items(cache)


def load_weights(model: TasteTokenizer, folder: str) -> None:
    """Weights of a saved tokenizer; only the duration embedding (absent there, zero-initialised here) may miss."""
    state = load_file(str(Path(folder) / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("aggregator.duration_embed.") for k in missing):
        raise ValueError(f"weights of {folder} do not fit: missing {missing}, unexpected {unexpected}")


def switch_off_location_prior(model: TasteTokenizer) -> None:
    """Fix every aggregator layer's location-prior weight at -30 (softplus ~ 1e-13: no prior) and freeze it."""
    with torch.no_grad():
        for layer in model.aggregator.layers:
            layer.location_weight.fill_(-30.0)
            layer.location_weight.requires_grad_(False)


def train_variant(params: dict, paths: P.StagePaths, text_only_from: str | None, init_from: str | None,
                  cache: Path | None, no_location_prior: bool = False) -> tuple[TasteTokenizer, dict]:
    model = P.build_model(params, paths)
    t0 = time.perf_counter()
    # the cache holds the train split only; the stretched copies (tokenizer.stretch_augment) are the variant's own
    items = P.with_stretched(model, params, paths, train_items(model, params, paths, cache))
    items_s = time.perf_counter() - t0
    t = params["tokenizer"]["train"]
    stages = ("text_only", "no_vq", "rvq")
    if text_only_from:
        load_weights(model, text_only_from)
        stages = ("no_vq", "rvq")
    if init_from:  # a fine-tune of a finished model: its RVQ sub-stage continued for rvq_steps
        load_weights(model, init_from)
        stages = ("rvq",)
    if no_location_prior:
        switch_off_location_prior(model)
    t0 = time.perf_counter()
    infos = train_all(model, items, StageSteps(t["text_only_steps"], t["no_vq_steps"], t["rvq_steps"]),
                      P.substage_train_config(params), paths.models, stages=stages,
                      **P.training_aids(params))
    model.save_pretrained(paths.final)
    return model, {"items_s": round(items_s), "fit_s": round(time.perf_counter() - t0), "stages": list(stages),
                   "steps": {st: t[f"{st}_steps"] for st in stages},
                   "stage_wall_s": {i["stage"]: round(i["wall_time_s"]) for i in infos if "wall_time_s" in i},
                   "final_train_log": {i["stage"]: i.get("final") for i in infos}}


LENGTH_RULES = ("median", "mean", "mean_log")


def use_length_rule(model: TasteTokenizer, rule: str) -> None:
    """Point of the length head's count distribution each generated word gets, in place of the decoder's median
    (`UnitDecoder.choose_lengths` in median mode; sampling mode is left as it is). The median of a wide distribution
    sits nearer its bulk than the mean does, so a stretched word's long tail may count for more under "mean";
    "mean_log" is exp(E[log count]), between the two for a right-skewed distribution."""
    if rule not in LENGTH_RULES:
        raise SystemExit(f"_length_rule must be one of {LENGTH_RULES}, got {rule!r}")
    decoder = model.decoder
    if not decoder.has_length_head:
        raise SystemExit("_length_rule needs a tokenizer with the decoder's length head (decoder.length_head: true)")
    if rule == "median":
        return
    median_or_sample = decoder.choose_lengths

    def choose_lengths(hidden: torch.Tensor, median: bool, gen) -> torch.Tensor:
        if not median:
            return median_or_sample(hidden, median, gen)
        probs = torch.softmax(decoder.length_logits(hidden).float(), dim=-1)  # count 0 has probability 0
        counts = torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)
        if rule == "mean":
            point = (probs * counts).sum(-1)
        else:
            point = (probs[..., 1:] * counts[1:].log()).sum(-1).exp()
        return point.round().long().clamp(min=1, max=decoder.cfg.max_word_units - 1)

    decoder.choose_lengths = choose_lengths


class ContinuousVectors:
    """A no-VQ tokenizer seen through the swap code's codes interface: `encode` files each word's continuous vector
    in a table and returns its row index as the word's one-column "code", `codes_to_vectors` looks the rows up.
    Swapping word j's code between two renditions therefore swaps j's continuous vector, exactly as the RVQ model's
    codes are swapped (the swap stage itself only ever decodes RVQ codes)."""

    def __init__(self, model: TasteTokenizer):
        if model.stage != "no_vq":
            raise ValueError(f"ContinuousVectors wraps a no-VQ model, got stage {model.stage!r}")
        self.model, self.table = model, []

    def __getattr__(self, name: str):
        if name in ("model", "table"):  # not set yet (copy, unpickling): no recursion through self.model
            raise AttributeError(name)
        return getattr(self.model, name)

    def decode(self, transcript: str, codes, speaker, seed: int = 0, n_layers: int | None = None):
        """The model's decode, reading the codes as table rows (its own would read them as RVQ codes)."""
        return self.decode_batch([transcript], [self.codes_to_vectors(codes)], speaker.unsqueeze(0), seed=seed)[0]

    def encode(self, mel, transcript: str):
        from taste.tokenizer.model import WordCodes

        vectors = self.model.encode(mel, transcript).vectors
        start = len(self.table)
        self.table.extend(vectors)
        return WordCodes(torch.arange(start, start + vectors.shape[0])[:, None], vectors)

    def codes_to_vectors(self, codes, n_layers: int | None = None):
        return torch.stack([self.table[i] for i in codes[:, 0].tolist()])

    def decode_batch(self, *args, **kwargs):
        return self.model.decode_batch(*args, **kwargs)


def slope_row(slope: dict) -> dict:
    """The swap stage's local quantities (retention; transfer = swap @ j, controls and leakage relative to j's
    retention) of the duration (stretch) and log-F0 (shift) pairs -> {measure: {quantity: [value, lo, hi, n]}}."""
    out: dict = {}
    for r in local_slope_frame({"dev": slope}).itertuples():
        out.setdefault(r.measure, {"directed_pairs": r.directed_pairs})[r.quantity] = [
            round(r.value, 3), round(r.ci_lo, 3), round(r.ci_hi, 3), int(r.n)]
    return out


def main() -> None:
    args, params, overrides = dev_variant_args(__doc__, "tokenizer", "benchmarks_runs/tokenizer_variants")
    pretrained, text_only_from = overrides.pop("_pretrained", None), overrides.pop("_text_only_from", None)
    init_from, cache = overrides.pop("_init_from", None), overrides.pop("_items_cache", None)
    no_location_prior = bool(overrides.pop("_no_location_prior", False))
    length_rule = overrides.pop("_length_rule", None)
    tp = params["tokenizer"]
    for key in ("rvq", "decoder"):
        tp[key].update(overrides.pop(key, {}))
    override_section(tp, overrides)
    root, runs = args.root.resolve(), (args.runs / args.name).resolve()
    paths = variant_paths(root, params, runs)
    fit = {}
    if pretrained:
        model = TasteTokenizer.from_pretrained(pretrained)
    else:
        model, fit = train_variant(params, paths, text_only_from, init_from, Path(cache) if cache else None,
                                   no_location_prior)
    model.eval()
    if length_rule is not None:
        use_length_rule(model, length_rule)
    swap_model = ContinuousVectors(model) if model.stage == "no_vq" else model

    t0 = time.perf_counter()
    dev_items = P.split_items(model, params, paths, "dev", limit=int(tp["eval_utterances"]))
    tf = teacher_forced_accuracy(model, dev_items)
    recon = {"teacher_forced_top1": round(float(tf.top1.mean()), 4), "teacher_forced_top5": round(float(tf.top5.mean()), 4),
             "attention_in_span": round(float(attention_in_span(model, dev_items)), 4), "n_utterances": len(dev_items)}
    if model.stage == "rvq" and model.cfg.conditioning == "word_sync":  # issue 13's duration consistency, as the stage's table measures it, on dev
        ref, hyp, utts = boundary_durations_by_utterance(dev_items, reconstruct(model, dev_items,
                                                                                seed=int(params["shared"]["seed"])),
                                                         model.cfg.unit_rate_hz)
        recon["duration_consistency"] = {k: round(float(v), 4) for k, v in consistency_with_ci(
            ref, hyp, int(params["swap"]["bootstrap"]), int(params["shared"]["seed"]), utts).items()}

    sp = params["swap"]
    vocoder = UnitVocoder.from_pretrained(root / sp["vocoder_dir"])
    settings = settings_from_params(sp, model.cfg.unit_rate_hz)
    edit_settings = edit_settings_from_params(sp["edited"])
    speakers = FeatureStore(paths.prepared / "speaker_embeddings.safetensors")
    bases = middle_word_bases(read_manifest(paths.prepared / "dev.jsonl"), edit_settings.dev_bases)
    pitch_cfg = pitch_config(params, mel_config(params))
    edited = measure_edited_set(swap_model, vocoder, bases, lambda u: read_speech(str(root / u.audio_path), u.text),
                                edit_settings, settings, lambda uid: speakers.get(uid).float(), mel_config(params),
                                pitch_cfg, slope_settings_from_params(sp["slope"]), int(sp["bootstrap"]),
                                int(params["shared"]["seed"]))
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "slope_edited_dev.json").write_text(json.dumps(edited.slope, indent=2, default=float))
    result = {"name": args.name, "overrides": json.loads(args.overrides), **fit,
              "stage": model.stage, "duration_feature": model.cfg.aggregator.duration_feature, "dev_recon": recon,
              "edited_dev": {"n_bases": len(bases), "n_directed_pairs": len(edited.pairs), **slope_row(edited.slope)},
              "seconds_edited_dev": round(edited.seconds),
              "measure_s": round(time.perf_counter() - t0)}
    (runs / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
