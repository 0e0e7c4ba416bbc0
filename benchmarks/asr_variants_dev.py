"""Scratch: ASR variants on the study's train split, dev WER by attention greedy and CTC greedy."""
import dataclasses, json, sys, time, torch
from pathlib import Path
from taste.asr.pipeline import config_from_params, fit_tokenizer
from taste.asr.train import (AsrDataset, CtcTrainingModel, LengthBuckets, SpecAugment, make_collate, make_loss_fn, unwrap, evaluate_asr)
from taste.asr.whisper import build_asr, _inputs
from taste.asr.modeling import encoder_lengths
from taste.asr.features import pad_mels
from taste.config import load_params, set_threads
from taste.data.loaders import FeatureStore
from taste.data.records import read_manifest
from taste.data.text_norm import normalise
from taste.evaluation.wer import wer
from taste.training import train

run = Path("/work/run")
name = sys.argv[1]; var = json.loads(sys.argv[2])
params = load_params(run / "params.yaml"); set_threads(2)
for k, v in var.get("asr", {}).items(): params["asr"][k] = v
for k, v in var.get("train", {}).items(): params["asr"]["train"][k] = v
cfg, tcfg = config_from_params(params)
cfg = dataclasses.replace(cfg, **var.get("cfg", {}))
prep = run / "data/prepared"
tr = read_manifest(prep / "train.jsonl"); dv = read_manifest(prep / "dev.jsonl")
st_tr = FeatureStore(prep / "features/train.safetensors"); st_dv = FeatureStore(prep / "features/dev.safetensors")
tok = fit_tokenizer(run / "data/raw/text_pool.txt", [u.text for u in tr], params["asr"]["bpe_vocab_size"])
model = build_asr(cfg, tok, seed=tcfg.seed)
w = float(params["asr"]["ctc_weight"])
pw = float(var.get("phone", 0.0))
from taste.units.phones import load_phone_vocab
from taste.asr.train import state_phone_labels
vocab = load_phone_vocab(prep / "phones.json")
labels = state_phone_labels(tr, [st_tr.get(u.id).shape[-1] for u in tr], vocab) if pw > 0 else None
trained = CtcTrainingModel(model, vocab.n_phones if pw > 0 else 0)
ds = AsrDataset([u.id for u in tr], [u.text for u in tr], st_tr, tok, labels)
ds = LengthBuckets(ds, [st_tr.get(u.id).shape[-1] for u in tr], tcfg.batch_size, seed=tcfg.seed)
collate = unwrap(make_collate(model))
tcfg = dataclasses.replace(tcfg, batch_size=1)
t0 = time.time()
res = train(trained, ds, collate, make_loss_fn(SpecAugment(), ctc_weight=w, frame_phone_weight=pw), tcfg, Path("/work/scratch/runs") / name)
fit = time.time() - t0
model.eval(); trained.eval()
summ, rows = evaluate_asr(model, tok, [u.id for u in dv], [u.text for u in dv], st_dv)
refs, hyps = [], []
with torch.no_grad():
  for s in range(0, len(dv), 32):
    ch = dv[s:s+32]; x, L = pad_mels([st_dv.get(u.id) for u in ch]); feats, mask, L = _inputs(model, x, L)
    lp = trained.ctc(model.encode(feats, mask).last_hidden_state).argmax(-1); el = encoder_lengths(L)
    for i, u in enumerate(ch):
      out, prev = [], None
      for q in lp[i, :el[i]].tolist():
        if q != prev and q != model.config.pad_token_id: out.append(q)
        prev = q
      hyps.append(normalise(tok.decode(out))); refs.append(u.text)
last = [r for r in res.history if "loss" in r][-1]
print(json.dumps({"name": name, "var": var, "fit_s": round(fit), "dev_wer_att": round(summ["wer"], 3), "dev_cer_att": round(summ["cer"], 3),
      "dev_wer_ctc": round(wer(refs, hyps), 3), "vocab": tok.get_vocab_size(), "last": {k: round(v, 3) for k, v in last.items()}}), flush=True)
for r in rows[:3]: print("  ", r["ref"], "|", r["hyp"])
for r, h in list(zip(refs, hyps))[:3]: print("  ctc:", h)
