"""The swap study against a real (debug-size, untrained) TasteTokenizer: the contract, not the quality."""
import pytest
import torch

from swap_fakes import make_pairs
from taste.swap.decode import decode_jobs
from taste.swap.jobs import build_pairs
from taste.swap.study import SwapSettings, plan_jobs, run_decoder


@pytest.fixture(scope="module")
def tokenizer():
    from dataclasses import replace

    from taste.asr.bpe import train_bpe
    from taste.asr.whisper import build_asr, debug_config as asr_debug
    from taste.tokenizer import TasteTokenizer, debug_config

    utts, _, _ = make_pairs(n_pairs=2, n_words=5, n_q=2)
    bpe = train_bpe([u.text for u in utts] * 4, vocab_size=60, min_frequency=1)
    asr = build_asr(asr_debug(), bpe, seed=0)
    torch.manual_seed(0)
    cfg = debug_config(vocab_size=bpe.get_vocab_size(), n_units=32)
    cfg = replace(cfg, aggregator=replace(cfg.aggregator, d_model=asr.config.d_model, n_heads=2,
                                          max_tokens=asr.config.max_target_positions,
                                          ffn_dim=asr.config.decoder_ffn_dim))
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage="rvq").eval()


def test_study_runs_on_the_real_decoder(tokenizer):
    utts, codes, speakers = make_pairs(n_pairs=2, n_words=5, n_q=tokenizer.cfg.rvq.n_quantizers)
    speakers = {k: torch.randn(tokenizer.cfg.decoder.speaker_dim) for k in speakers}
    settings = SwapSettings(seeds=(0, 1), batch_size=16, rate_hz=tokenizer.cfg.unit_rate_hz)
    plan = plan_jobs(build_pairs(utts), codes, settings)
    flat = [j for jobs in plan for j in jobs]
    out = decode_jobs(tokenizer, flat, speakers, seed=0, rate_hz=settings.rate_hz, batch_size=16)
    assert all(len(d.word_durations_s) == 5 and min(d.word_durations_s) > 0 for d in out)
    assert all(abs(sum(d.word_durations_s) - len(d.units) / settings.rate_hz) < 1e-6 for d in out)
    again = decode_jobs(tokenizer, flat, speakers, seed=0, rate_hz=settings.rate_hz, batch_size=16)
    assert [d.units for d in again] == [d.units for d in out]  # seeded
    rows, decoded, seconds = run_decoder(tokenizer, plan, speakers, settings)
    assert len(rows) > 0 and set(decoded) == {0, 1} and seconds > 0


def test_cli_speaks_the_swap(tokenizer, tmp_path, capsys):
    import json

    from taste.cli import main
    from taste.data.audio_io import read_audio
    from taste.vocoder.model import build_debug_vocoder

    tokenizer.save_pretrained(tmp_path / "taste")
    build_debug_vocoder(speaker_dim=256).save_pretrained(tmp_path / "vocoder")
    text = "w0x0 w0x1 w0x2 w0x3 w0x4"
    from taste.tokenizer.codes_file import FORMAT, tokenizer_fingerprint

    made_by = tokenizer_fingerprint(tmp_path / "taste")  # codes.json names the tokenizer that made it
    for name, value in (("rec", 2), ("don", 9)):
        doc = {"format": FORMAT, "tokenizer": made_by, "transcript": text,
               "codes": [[value] * tokenizer.cfg.rvq.n_quantizers] * 5, "speaker": [0.1] * 256}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    main(["swap", str(tmp_path / "rec.json"), str(tmp_path / "don.json"), "--span", "first_third",
          "-o", str(tmp_path / "sw.json"), "--wav", str(tmp_path / "sw.wav"),
          "--model", str(tmp_path / "taste"), "--vocoder", str(tmp_path / "vocoder")])
    assert len(read_audio(tmp_path / "sw.wav", 16000)) > 0
    out = capsys.readouterr().out
    assert "recipient" in out and "*w0x0" in out and "*w0x1" in out and "*w0x2" not in out


def test_records_sharing_an_embedding_decode_once_and_alike(tokenizer):
    """Edited pairs: base and variant (and the base of every edit kind) speak with one embedding, and one direction's
    swap is the other's control. Each distinct (embedding, text, codes) is decoded once, and every job gets what it
    gets when decoded on its own."""
    from taste.data.records import PairInfo, Utterance

    n_q, text, j = tokenizer.cfg.rvq.n_quantizers, "w0x0 w0x1 w0x2 w0x3 w0x4", 2
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 16, (5, n_q), generator=g)
    voice = torch.randn(tokenizer.cfg.decoder.speaker_dim, generator=g)
    utts, codes = [], {}
    for kind in ("stretch", "shift"):
        variant = base.clone()
        variant[j] = torch.randint(0, 16, (n_q,), generator=g)
        for uid, role, c in ((f"b~base-{kind}", "base", base), (f"b~{kind}", "variant", variant)):
            utts.append(Utterance(uid, "b.wav", 1.0, 16000, text, "spk", "test", None, None,
                                  pair=PairInfo("local", f"{kind}:b", role, j)))
            codes[uid] = c
    speakers = {u.id: voice.clone() for u in utts}
    settings = SwapSettings(seeds=(0,), batch_size=4, rate_hz=tokenizer.cfg.unit_rate_hz)
    flat = [job for jobs in plan_jobs(build_pairs(utts), codes, settings) for job in jobs]
    calls = []
    decode_batch = tokenizer.decode_batch

    def counting(transcripts, *args, **kwargs):
        calls.append(len(transcripts))
        return decode_batch(transcripts, *args, **kwargs)

    tokenizer.decode_batch = counting
    try:
        out = decode_jobs(tokenizer, flat, speakers, seed=0, rate_hz=settings.rate_hz, batch_size=4)
    finally:
        del tokenizer.decode_batch
    distinct = {tuple(job.codes.reshape(-1).tolist()) for job in flat}
    assert sum(calls) == len(distinct) < len(flat)
    for job, got in zip(flat, out):
        alone = tokenizer.decode(text, job.codes.long(), voice, seed=0)
        assert list(got.units) == alone.units.tolist()

