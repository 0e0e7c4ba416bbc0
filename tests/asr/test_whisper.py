"""Length-aware Whisper: agreement with transformers' stock Whisper, batch invariance, decoding, save/load."""

import pytest
import torch
from transformers import WhisperForConditionalGeneration

from taste.asr.bpe import EOT, SOT, save_bpe, special_id, train_bpe
from taste.asr.features import EmptyInputError, pad_mels, prepare_features
from taste.asr.modeling import InputTooLongError, encoder_lengths
from taste.asr.whisper import (build_asr, debug_config, encoder_states, greedy_decode, load_asr,
                               load_pretrained_whisper, save_asr, transcribe)

CORPUS = ["the fox ran across the river", "a quiet morning in the town", "she sang a song about the sea"] * 5


@pytest.fixture(scope="module")
def tok():
    return train_bpe(CORPUS, vocab_size=80)


@pytest.fixture(scope="module")
def model(tok):
    return build_asr(debug_config(), tok, seed=3)


def fake_mels(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(80, n, generator=g) - 4.0 for n in lengths]


def stock_copy(model):
    stock = WhisperForConditionalGeneration(model.config).eval()
    stock.load_state_dict(model.state_dict())
    return stock


def test_full_window_matches_stock_whisper_encoder(model):
    window = 2 * model.config.max_source_positions
    mels, lengths = pad_mels(fake_mels([window]))
    feats, _ = prepare_features(mels, lengths, window)
    ours = encoder_states(model, mels, lengths, layers=(0, 1, 2, -1))
    stock = stock_copy(model).model.encoder(feats, output_hidden_states=True)
    torch.testing.assert_close(ours[-1], stock.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[2], ours[-1])  # layer N is the final, normalised one
    torch.testing.assert_close(ours[0], stock.hidden_states[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[1], stock.hidden_states[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours[1], ours[-1])


def test_states_and_transcripts_do_not_depend_on_batch_padding(model, tok):
    mels = fake_mels([37, 120, 64])
    batch, lengths = pad_mels(mels)
    together = encoder_states(model, batch, lengths, layers=(1, -1))
    for i, m in enumerate(mels):
        alone = encoder_states(model, m[None], None, layers=(1, -1))
        n = int(encoder_lengths(lengths[i]))
        assert alone[-1].shape[1] == n
        for layer in (1, -1):
            torch.testing.assert_close(together[layer][i, :n], alone[layer][0], atol=1e-5, rtol=1e-5)
            assert torch.all(together[layer][i, n:] == 0)
    alone_text = [transcribe(model, tok, m[None])[0] for m in mels]
    assert transcribe(model, tok, batch, lengths) == alone_text


def slow_greedy(model, mels, n_steps):
    """Reference: recompute the whole prefix at every step, no cache, one utterance."""
    window = 2 * model.config.max_source_positions
    feats, mask = prepare_features(mels, torch.tensor([mels.shape[-1]]), window)
    tokens = [model.config.decoder_start_token_id]
    with torch.no_grad():
        for _ in range(n_steps):
            logits = model(feats, torch.tensor([tokens]), attention_mask=mask).logits
            tokens.append(int(logits[0, -1].argmax()))
            if tokens[-1] == model.config.eos_token_id:
                break
    out = tokens[1:]
    return out[: out.index(model.config.eos_token_id)] if model.config.eos_token_id in out else out


def test_cached_batched_greedy_equals_slow_reference(model):
    mels = fake_mels([50, 90], seed=1)
    batch, lengths = pad_mels(mels)
    fast = greedy_decode(model, batch, lengths, max_new_tokens=12)
    for i, m in enumerate(mels):
        assert fast[i] == slow_greedy(model, m[None], 12)


def test_save_load_round_trip(model, tok, tmp_path):
    mels, lengths = pad_mels(fake_mels([40, 77], seed=2))
    save_asr(model, tok, tmp_path / "asr")
    again = load_asr(tmp_path / "asr")
    assert (tmp_path / "asr" / "model.safetensors").is_file() and (tmp_path / "asr" / "tokenizer.json").is_file()
    assert transcribe(again, tok, mels, lengths) == transcribe(model, tok, mels, lengths)
    a, b = encoder_states(again, mels, lengths, (1, -1)), encoder_states(model, mels, lengths, (1, -1))
    for layer in a:
        assert torch.equal(a[layer], b[layer])


def test_bad_inputs(model, tok, tmp_path):
    window = 2 * model.config.max_source_positions
    with pytest.raises(EmptyInputError):
        transcribe(model, tok, torch.zeros(1, 80, 0))
    with pytest.raises(EmptyInputError):
        transcribe(model, tok, torch.zeros(2, 80, 10), torch.tensor([10, 0]))
    with pytest.raises(InputTooLongError, match="encoder window"):
        transcribe(model, tok, torch.zeros(1, 80, window + 1))
    with pytest.raises(InputTooLongError):
        encoder_states(model, torch.zeros(1, 80, window + 2))
    with pytest.raises(ValueError, match="80"):
        transcribe(model, tok, torch.zeros(1, 40, 10))
    with pytest.raises(IndexError, match="layer"):
        encoder_states(model, torch.zeros(1, 80, 10), layers=(7,))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_asr(tmp_path / "nothing")


def test_load_pretrained_whisper_from_local_folder(model, tok, tmp_path):
    """A stock transformers Whisper folder (as distil-whisper ships) loads and runs on full windows."""
    stock = stock_copy(model)
    stock.save_pretrained(tmp_path / "whisper")
    save_bpe(tok, tmp_path / "whisper")
    loaded, loaded_tok = load_pretrained_whisper(tmp_path / "whisper")
    assert loaded.config.pad_to_window
    assert loaded.config.asr_prompt == [special_id(tok, SOT)]  # no Whisper language tokens in this vocabulary
    for k, v in stock.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    mels, lengths = pad_mels(fake_mels([30, 61], seed=4))
    window = 2 * model.config.max_source_positions
    states = encoder_states(loaded, mels, lengths, layers=(-1,))[-1]
    full, _ = prepare_features(mels, lengths, window, pad_to_window=True)
    ref = stock.model.encoder(full).last_hidden_state
    torch.testing.assert_close(states[0, :15], ref[0, :15], atol=1e-5, rtol=1e-5)
    texts = transcribe(loaded, loaded_tok, mels, lengths)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert special_id(loaded_tok, EOT) == loaded.config.eos_token_id


def test_default_token_cap_is_per_utterance(model):
    mels, lengths = pad_mels(fake_mels([20, 150], seed=5))
    out = greedy_decode(model, mels, lengths)
    assert all(len(ids) <= 16 + int(n) // 10 for ids, n in zip(out, lengths))
    assert out[0] == greedy_decode(model, mels[:1, :, :20], lengths[:1])[0]


def test_encoder_positions_are_whisper_sinusoids(model):
    """Whisper's encoder positions are fixed sinusoids; a swapped-in encoder must not keep random ones."""
    from transformers.models.whisper.modeling_whisper import sinusoids

    pos = model.model.encoder.embed_positions.weight
    torch.testing.assert_close(pos, sinusoids(*pos.shape))
    assert not pos.requires_grad
