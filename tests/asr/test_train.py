"""ASR training pieces: collate/labels, loss masking, a tiny run through the study's loop, evaluation, CLI."""

import argparse
import json

import numpy as np
import pytest
import torch

from taste.asr.bpe import EOT, SOT, special_id, train_bpe, word_ids
from taste.asr.pipeline import fit_asr
from taste.asr.train import AsrDataset, SpecAugment, evaluate_asr, make_collate, make_loss_fn, spec_augment
from taste.asr.whisper import build_asr, debug_config, save_asr
from taste.training import TrainConfig

WORDS = ["red", "green", "blue", "cat", "dog"]
TEXTS = ["red cat", "green dog", "blue cat", "red dog", "green cat", "blue dog"]


class DictStore:
    def __init__(self, data):
        self.data = data

    def get(self, key):
        return self.data[key]


def word_mels(text, seed=0):
    """Each word is 20 frames of a fixed random pattern: a learnable toy speech."""
    pats = {w: torch.randn(80, 20, generator=torch.Generator().manual_seed(i)) for i, w in enumerate(WORDS)}
    noise = torch.Generator().manual_seed(seed)
    return torch.cat([pats[w] + 0.1 * torch.randn(80, 20, generator=noise) for w in text.split()], dim=1) - 3.0


@pytest.fixture(scope="module")
def tok():
    return train_bpe(TEXTS * 4, vocab_size=60)


@pytest.fixture(scope="module")
def data():
    ids = [f"u{i}" for i in range(len(TEXTS))]
    return ids, DictStore({i: word_mels(t, n) for n, (i, t) in enumerate(zip(ids, TEXTS))})


def test_collate_shifts_targets_and_pads(tok, data):
    ids, store = data
    model = build_asr(debug_config(), tok)
    ds = AsrDataset(ids, TEXTS, store, tok)
    items = [ds[0], ds[1]]
    items[1] = (items[1][0][:, :33], items[1][1] + word_ids(tok, "cat")[0])
    batch = make_collate(model)(items)
    assert batch["input_features"].shape == (2, 80, 40) and batch["attention_mask"][1].sum() == 33
    for i, (_, t) in enumerate(items):
        n = len(t) - 1
        assert batch["decoder_input_ids"][i, :n].tolist() == t[:-1] and batch["labels"][i, :n].tolist() == t[1:]
        assert (batch["labels"][i, n:] == -100).all()
    assert items[0][1][0] == special_id(tok, SOT) and items[0][1][-1] == special_id(tok, EOT)


def test_batch_loss_is_the_token_weighted_mean_of_single_losses(tok, data):
    ids, store = data
    model = build_asr(debug_config(), tok, seed=1)
    ds, collate, loss_fn = AsrDataset(ids, TEXTS, store, tok), make_collate(model), make_loss_fn(None)
    items = [ds[0], (ds[1][0][:, :27], ds[1][1]), ds[2]]
    with torch.no_grad():
        together, _ = loss_fn(model, collate(items))
        singles = [loss_fn(model, collate([it]))[0] for it in items]
    n_tok = torch.tensor([len(t) - 1 for _, t in items], dtype=torch.float32)
    torch.testing.assert_close(together, (torch.stack(singles) * n_tok).sum() / n_tok.sum(), atol=1e-5, rtol=1e-5)


def test_spec_augment_masks_bands_and_keeps_input():
    torch.manual_seed(0)
    x = torch.ones(2, 80, 100)
    y = spec_augment(x, SpecAugment(freq_masks=1, freq_width=10, time_masks=1, time_width=20))
    assert torch.equal(x, torch.ones(2, 80, 100)) and (y == 0).any() and (y == 1).any()


def test_tiny_training_learns_and_evaluates(tok, data, tmp_path):
    ids, store = data
    cfg = TrainConfig(steps=200, batch_size=6, lr=3e-3, warmup_steps=10, log_every=20, checkpoint_every=1000,
                      bucket_by_length=True)  # the stage's setting (asr.train.bucket_by_length)
    model, result = fit_asr(debug_config(), tok, ids, TEXTS, store, cfg, tmp_path / "run", spec_augment=False)
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert len(list((tmp_path / "run").glob("*/history.jsonl"))) == 1   # run/<key>/history.jsonl
    summary, rows = evaluate_asr(model, tok, ids, TEXTS, store, batch_size=4)
    assert summary["n_utterances"] == len(ids) == len(rows)
    assert 0.0 <= summary["cer"] <= summary["wer"] + 1e-9 or summary["wer"] == 0.0
    assert summary["wer"] < 0.5, rows


def test_evaluate_rejects_no_utterances(tok, data):
    with pytest.raises(ValueError, match="no utterances"):
        evaluate_asr(build_asr(debug_config(), tok), tok, [], [], data[1])


def test_transcribe_command_on_a_wav(tok, tmp_path):
    import soundfile as sf

    from taste.asr import commands

    save_asr(build_asr(debug_config(), tok), tok, tmp_path / "asr")
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32), 16000, subtype="PCM_16")
    (tmp_path / "params.yaml").write_text(json.dumps({"shared": {"threads": 1, "sample_rate": 16000, "features": {
        "n_fft": 400, "hop_length": 160, "n_mels": 80, "f_min": 0, "f_max": 8000}}}))
    parser = argparse.ArgumentParser()
    parser.add_argument("--params")
    commands.register(parser.add_subparsers())
    out = tmp_path / "out.jsonl"
    args = parser.parse_args(["--params", str(tmp_path / "params.yaml"), "transcribe", str(wav),
                              "--model", str(tmp_path / "asr"), "-o", str(out)])
    assert args.func(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["audio"] == str(wav) and isinstance(rows[0]["text"], str)


def test_asr_fingerprint_changes_with_any_setting_and_the_data(tok, data):
    from dataclasses import replace

    from taste.asr.pipeline import asr_fingerprint
    from taste.training.checkpoint import run_key

    ids, store = data
    cfg, tc, ds = debug_config(), TrainConfig(steps=10, batch_size=2, lr=1e-3), AsrDataset(ids, TEXTS, store, tok)
    key = run_key(tc, asr_fingerprint(cfg, tok, ds))
    assert key == run_key(tc, asr_fingerprint(cfg, tok, AsrDataset(ids, TEXTS, store, tok)))
    assert key == run_key(replace(tc, log_every=1, checkpoint_every=3), asr_fingerprint(cfg, tok, ds))
    assert key != run_key(tc, asr_fingerprint(replace(cfg, d_model=64), tok, ds))
    assert key != run_key(replace(tc, steps=11), asr_fingerprint(cfg, tok, ds))
    assert key != run_key(tc, asr_fingerprint(cfg, train_bpe(TEXTS, vocab_size=50), ds))
    assert run_key(tc, asr_fingerprint(cfg, tok, ds, ctc_weight=0.3)) != run_key(tc, asr_fingerprint(cfg, tok, ds,
                                                                                                     ctc_weight=0.0))
    changed = DictStore({**store.data, ids[0]: store.data[ids[0]] + 1e-3})  # same ids, counts and texts
    assert key != run_key(tc, asr_fingerprint(cfg, tok, AsrDataset(ids, TEXTS, changed, tok)))


def test_fit_asr_resumes_only_its_own_run(tok, data, tmp_path, monkeypatch):
    """Same code and data: the finished run is found again. Changed features or code: a new folder, trained afresh."""
    import taste.asr.pipeline as pipeline

    ids, store = data
    tc = TrainConfig(steps=2, batch_size=3, lr=1e-3, log_every=1)
    first, r1 = fit_asr(debug_config(), tok, ids, TEXTS, store, tc, tmp_path, spec_augment=False)
    again, r2 = fit_asr(debug_config(), tok, ids, TEXTS, store, tc, tmp_path, spec_augment=False)
    assert r1.resumed_from == 0 and r2.resumed_from == 2 and len(list(tmp_path.iterdir())) == 1
    torch.testing.assert_close(dict(again.state_dict()), dict(first.state_dict()))
    changed = DictStore({**store.data, ids[0]: store.data[ids[0]] + 0.5})
    _, r3 = fit_asr(debug_config(), tok, ids, TEXTS, changed, tc, tmp_path, spec_augment=False)
    assert r3.resumed_from == 0 and len(list(tmp_path.iterdir())) == 2
    monkeypatch.setattr(pipeline, "code_digest", lambda: "other code")
    _, r4 = fit_asr(debug_config(), tok, ids, TEXTS, store, tc, tmp_path, spec_augment=False)
    assert r4.resumed_from == 0 and len(list(tmp_path.iterdir())) == 3


def test_ctc_loss_trains_the_encoder_only(tok, data):
    from taste.asr.train import CtcTrainingModel

    ids, store = data
    wrapped = CtcTrainingModel(build_asr(debug_config(), tok, seed=2))
    batch = make_collate(wrapped.whisper)([AsrDataset(ids, TEXTS, store, tok)[i] for i in range(3)])
    assert batch["ctc_lengths"].tolist() == [len(word_ids(tok, t)[0]) for t in TEXTS[:3]]
    loss, logs = make_loss_fn(None, ctc_weight=1.0)(wrapped, batch)
    assert torch.isfinite(loss) and logs["ctc"] == pytest.approx(float(loss.detach()), rel=1e-6)
    loss.backward()
    assert wrapped.whisper.model.encoder.conv1.weight.grad.abs().sum() > 0
    grad = wrapped.whisper.model.decoder.embed_tokens.weight.grad
    assert grad is None or not grad.any()


def test_state_phone_labels_put_each_phone_under_its_encoder_states():
    from types import SimpleNamespace

    from taste.asr.train import state_phone_labels
    from taste.data.records import PhoneAlignment
    from taste.units.phones import PhoneVocab

    vocab = PhoneVocab(["a", "b"])
    utt = SimpleNamespace(id="u0", phones=(PhoneAlignment("_", 0.0, 0.1), PhoneAlignment("a", 0.1, 0.1),
                                           PhoneAlignment("b", 0.2, 0.06)))
    # 29 mel frames at 100 Hz -> 15 encoder states at 50 Hz (20 ms each, centres 10, 30, ... ms)
    (labels,) = state_phone_labels([utt], [29], vocab)
    a, b = vocab._lookup["a"], vocab._lookup["b"]
    assert labels.tolist() == [-1] * 5 + [a] * 5 + [b] * 3 + [-1] * 2
    with pytest.raises(ValueError, match="u1: no phone timings"):
        state_phone_labels([SimpleNamespace(id="u1", phones=())], [10], vocab)


def test_frame_phone_loss_trains_the_phone_head_and_ignores_padding(tok, data):
    from taste.asr.train import CtcTrainingModel

    ids, store = data
    n_states = [(store.get(i).shape[-1] + 1) // 2 for i in ids[:3]]
    labels = [np.arange(n) % 4 for n in n_states]
    labels[0][:3] = -1  # silence: no target
    wrapped = CtcTrainingModel(build_asr(debug_config(), tok, seed=2), n_phones=4)
    batch = make_collate(wrapped.whisper)([AsrDataset(ids[:3], TEXTS[:3], store, tok, labels)[i] for i in range(3)])
    frame = batch["frame_phones"]
    assert frame.shape[1] == (batch["input_features"].shape[-1] + 1) // 2
    assert (frame[0, :3] == -100).all() and frame[0, 3:n_states[0]].tolist() == labels[0][3:].tolist()
    assert (frame[1, n_states[1]:] == -100).all()  # padding beyond an utterance's states is ignored
    loss_fn = make_loss_fn(None, ctc_weight=0.0, frame_phone_weight=1.0)
    loss, logs = loss_fn(wrapped, batch)
    assert logs["phone_ce"] > 0 and float(loss.detach()) == pytest.approx(logs["ce"] + logs["phone_ce"], rel=1e-5)
    loss.backward()
    assert wrapped.phone.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="phone head"):
        make_loss_fn(None, frame_phone_weight=1.0)(CtcTrainingModel(wrapped.whisper), batch)


def test_fit_asr_needs_phone_labels_for_the_frame_phone_loss(tok, data, tmp_path):
    ids, store = data
    with pytest.raises(ValueError, match="phone_labels"):
        fit_asr(debug_config(), tok, ids, TEXTS, store, TrainConfig(steps=1, batch_size=2, lr=1e-3), tmp_path,
                frame_phone_weight=0.5)
