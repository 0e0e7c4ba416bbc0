"""How well does the study ASR hear with a better decoder? CTC beam search with a lexicon and a blind n-gram LM,
against the stage's greedy attention decoding, on the trained asr stage's own weights (no training).

The asr stage trains a CTC head on the encoder as a training aid and drops it from models/asr; its run checkpoint
(outputs/asr/training/<fingerprint>/checkpoint) keeps it. This script loads that checkpoint, computes CTC
log-probabilities, and decodes them with torchaudio's flashlight CTC decoder (`pip install flashlight-text`):
a lexicon of every word of the LM text spelled in the ASR's BPE pieces, and a word 3-gram ARPA LM (pocketsphinx's
ArpaBoLM, as the pocketsphinx judge uses) built from train-split transcripts + text-pool sentences with every
scored sentence removed (`blind_corpus`): the decoder never knows the answer. LM weights are chosen on dev; test
is scored once, at the dev choice, for the report.

    python benchmarks/asr_ctc_lm_dev.py [--root .] [--weights 0,0.5,1,2,4] [--word-scores -1,0,1,2]

Prints one JSON line per (split, decoder); writes outputs/benchmarks/asr_ctc_lm.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from taste.asr.bpe import PAD, SPECIAL_TOKENS, decode_text, load_bpe
from taste.asr.features import pad_mels
from taste.asr.modeling import encoder_lengths
from taste.asr.train import CtcTrainingModel, evaluate_asr
from taste.asr.whisper import encoder_states, load_asr
from taste.config import load_params, set_threads
from taste.data.loaders import FeatureStore
from taste.data.records import read_manifest, read_text_pool_sentences
from taste.metrics.recognizer import blind_corpus, check_blind
from taste.metrics.wer import wer
from taste.training.checkpoint import find_checkpoint, load_safetensors
from taste.units.metrics import ctc_greedy_decode

UNK_WORD = "<unk>"


def ctc_log_probs(ctc_model: CtcTrainingModel, store, ids: list[str], batch_size: int = 32) -> list[torch.Tensor]:
    """CTC log-probabilities per utterance: Tensor[S_i, V] (encoder states of each utterance only)."""
    mels = [store.get(i) for i in ids]
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: mels[i].shape[-1])
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            x, lengths = pad_mels([mels[i] for i in chunk])
            states = encoder_states(ctc_model.whisper, x, lengths)[-1]
            lp = ctc_model.ctc(states).float().log_softmax(-1)
            for row, (i, n) in enumerate(zip(chunk, encoder_lengths(lengths).tolist())):
                out[i] = lp[row, :n].contiguous()
    return out


def kenlm_arpa(path: Path) -> None:
    """Rewrite pocketsphinx's ARPA file in place in the strict layout KenLM reads: nothing before \\data\\ and
    tabs between probability, n-gram and back-off weight (pocketsphinx writes spaces)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, order = [], 0
    for line in lines[lines.index("\\data\\"):]:
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
        elif order and line.strip() and not line.startswith("\\"):
            parts = line.split()
            line = "\t".join([parts[0], " ".join(parts[1 : 1 + order])] + parts[1 + order : 2 + order])
        elif line.startswith("\\end"):
            order = 0
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def write_lexicon(path: Path, words: set[str], tok) -> None:
    """One line per word: the word, then its BPE pieces (the decoder only ever writes these words)."""
    with path.open("w", encoding="utf-8") as fh:
        for w in sorted(words):
            fh.write(w + "\t" + " ".join(tok.encode(w).tokens) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--weights", default="0,0.5,1,2,4", help="LM weights tried on dev")
    ap.add_argument("--word-scores", default="-1,0,1,2", help="word insertion scores tried on dev")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--beam-tokens", type=int, default=8, help="tokens considered per frame")
    ap.add_argument("--out", type=Path, default=Path("outputs/benchmarks/asr_ctc_lm.json"))
    args = ap.parse_args()
    from pocketsphinx.lm import ArpaBoLM
    from torchaudio.models.decoder import ctc_decoder

    params = load_params(args.root / "params.yaml")
    set_threads(params["shared"]["threads"])
    prepared = args.root / params["shared"]["paths"]["prepared"]
    model_dir = args.root / params["shared"]["paths"]["models"] / "asr"
    whisper, tok = load_asr(model_dir), load_bpe(model_dir)
    runs = sorted((args.root / params["shared"]["paths"]["outputs"] / "asr" / "training").glob("*/checkpoint"))
    ckpts = [c for c in (find_checkpoint(r) for r in runs) if c is not None]
    if len(ckpts) != 1:
        raise SystemExit(f"expected one asr run checkpoint under outputs/asr/training, found {len(ckpts)}")
    state = load_safetensors(ckpts[0] / "model.safetensors")
    n_phones = state["phone.weight"].shape[0] if "phone.weight" in state else 0
    ctc_model = CtcTrainingModel(whisper, n_phones)
    ctc_model.load_state_dict(state)
    ctc_model.eval()

    splits = {s: read_manifest(prepared / f"{s}.jsonl") for s in ("train", "dev", "test")}
    stores = {s: FeatureStore(prepared / "features" / f"{s}.safetensors") for s in ("dev", "test")}
    pool = read_text_pool_sentences(args.root / params["shared"]["paths"]["raw"] / "text_pool.txt",
                                    params["evaluation"]["recognizer_sentences"])
    scored = [u.text for s in ("dev", "test") for u in splits[s]]
    lm_text, n_removed = blind_corpus([u.text for u in splits["train"]] + pool, scored)
    check_blind(lm_text, scored)
    work = args.out.parent / "asr_ctc_lm"
    work.mkdir(parents=True, exist_ok=True)
    lm = ArpaBoLM(text="\n".join(sorted(set(lm_text))) + "\n", add_start=True)
    lm.compute()
    lm.write_file(str(work / "lm.arpa"))
    kenlm_arpa(work / "lm.arpa")
    words = {w for s in lm_text for w in s.split()}
    write_lexicon(work / "lexicon.txt", words, tok)
    vocab = tok.get_vocab()
    tokens = [""] * whisper.config.vocab_size
    for piece, idx in vocab.items():
        if idx < len(tokens):
            tokens[idx] = piece
    tokens = [t or f"<|unused_{i}|>" for i, t in enumerate(tokens)]
    sil = SPECIAL_TOKENS[-1]  # an extra token the model never emits: BPE words carry no separator
    print(f"LM: {len(set(lm_text))} sentences ({n_removed} scored removed), {len(words)} words", flush=True)

    results = []
    for split in ("dev", "test"):
        utts = splits[split]
        refs, ids = [u.text for u in utts], [u.id for u in utts]
        t0 = time.perf_counter()
        lps = ctc_log_probs(ctc_model, stores[split], ids)
        enc_s = time.perf_counter() - t0
        greedy = [decode_text(tok, ctc_greedy_decode(lp[None], torch.tensor([len(lp)]), blank=vocab[PAD])[0])
                  for lp in lps]
        results.append({"split": split, "decoder": "ctc greedy", "wer": wer(refs, greedy)})
        if split == "dev":
            summ, _ = evaluate_asr(whisper, tok, ids, refs, stores[split])
            results.append({"split": split, "decoder": "attention greedy (the stage's)", "wer": summ["wer"]})
        grid = [(w, s) for w in map(float, args.weights.split(",")) for s in map(float, args.word_scores.split(","))]
        if split == "test":
            grid = [best_setting]
        for lm_weight, word_score in grid:
            dec = ctc_decoder(lexicon=str(work / "lexicon.txt"), tokens=tokens,
                              lm=str(work / "lm.arpa") if lm_weight > 0 else None, beam_size=args.beam,
                              beam_size_token=args.beam_tokens, beam_threshold=25.0,
                              lm_weight=lm_weight, word_score=word_score, blank_token=PAD, sil_token=sil,
                              unk_word=UNK_WORD)
            t0 = time.perf_counter()
            hyps = []
            for lp in lps:
                hyp = dec(lp[None])[0][0]
                hyps.append(" ".join(w for w in hyp.words if w != UNK_WORD))
            row = {"split": split, "decoder": "ctc beam + lexicon" + (" + 3-gram" if lm_weight > 0 else ""),
                   "lm_weight": lm_weight, "word_score": word_score, "wer": wer(refs, hyps),
                   "decode_s": time.perf_counter() - t0, "encode_s": enc_s, "n": len(refs)}
            results.append(row)
            print(json.dumps(row), flush=True)
        if split == "dev":
            dev_rows = [r for r in results if r["split"] == "dev" and "lm_weight" in r]
            best = min(dev_rows, key=lambda r: r["wer"])
            best_setting = (best["lm_weight"], best["word_score"])
    for r in results:
        if "lm_weight" not in r:
            print(json.dumps(r))
    args.out.write_text(json.dumps({"chosen_on_dev": best_setting, "rows": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
