"""BPE tokenizer: word indices per token against a slow per-word reference, round trips, bad input."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from taste.asr.bpe import (EOT, PAD, SOT, SPECIAL_TOKENS, TranscriptError, decode_text, load_bpe, save_bpe,
                           special_id, train_bpe, word_ids)

CORPUS = [
    "the little fox ran across the frozen river",
    "she didn't want to leave the garden before sunset",
    "a quiet morning in the harbour town",
    "children played with the old wooden boat",
    "the baker's daughter sang a song about the sea",
] * 8

TEXTS = [
    "the fox ran",
    "she didn't leave the harbour",
    "xylophone zebra quizzical",          # unseen words: characters only
    "a",
    "the baker's daughter sang a song about the frozen sea before sunset",
    "oo o ooo o'o",
]


@pytest.fixture(scope="module")
def tok():
    return train_bpe(CORPUS, vocab_size=120)


def slow_word_ids(tok, text):
    """Reference: encode word by word (BPE merges never cross a word) and concatenate."""
    ids, index = [], []
    for w_i, word in enumerate(text.split()):
        piece = tok.encode(word, add_special_tokens=False).ids
        ids += piece
        index += [w_i] * len(piece)
    return ids, index


@pytest.mark.parametrize("text", TEXTS)
def test_word_ids_match_slow_reference(tok, text):
    assert word_ids(tok, text) == slow_word_ids(tok, text)


@pytest.mark.parametrize("text", TEXTS)
def test_every_word_has_tokens_and_decoding_round_trips(tok, text):
    ids, index = word_ids(tok, text)
    assert sorted(set(index)) == list(range(len(text.split())))
    assert index == sorted(index)
    assert decode_text(tok, ids) == text


def test_word_ids_on_byte_level_tokenizer_keeps_apostrophe_words_whole():
    """Whisper's tokenizer is byte-level: its pre-tokenizer splits "don't", the word index must not."""
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bl.decoder = decoders.ByteLevel()
    bl.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    ids, index = word_ids(bl, "she didn't leave")
    assert index[-1] == 2 and sorted(set(index)) == [0, 1, 2]
    assert any(bl.id_to_token(i) == "'t" for i, w in zip(ids, index) if w == 1)


def test_special_tokens_first_and_save_load_round_trip(tok, tmp_path):
    assert special_id(tok, PAD) == 0
    assert [tok.id_to_token(i) for i in range(len(SPECIAL_TOKENS))] == list(SPECIAL_TOKENS)
    save_bpe(tok, tmp_path)
    again = load_bpe(tmp_path)
    for text in TEXTS:
        assert word_ids(again, text) == word_ids(tok, text)
    assert decode_text(again, [special_id(again, SOT), *word_ids(again, "the fox")[0], special_id(again, EOT)]) == "the fox"


def test_bad_inputs(tok, tmp_path):
    with pytest.raises(TranscriptError, match="no words"):
        word_ids(tok, "   ")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_bpe(tmp_path / "missing")
    with pytest.raises(KeyError, match="special token"):
        special_id(tok, "<|nope|>")
