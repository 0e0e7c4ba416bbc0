import json

import pytest

from taste.swap.commands import parse_words, swap_documents
from taste.swap.spans import SwapError


def doc(codes, text="the cat sat", speaker=(0.5, 0.5)):
    return {"format": "taste-codes/1", "transcript": text, "codes": codes, "speaker": list(speaker)}


def test_swap_documents_keeps_recipient_voice_and_text():
    rec = doc([[1, 1], [2, 2], [3, 3]], speaker=(1.0, 0.0))
    don = doc([[7, 7], [8, 8], [9, 9]], speaker=(0.0, 1.0))
    out = swap_documents(rec, don, [1])
    assert out["codes"] == [[1, 1], [8, 8], [3, 3]]
    assert out["speaker"] == [1.0, 0.0] and out["transcript"] == "the cat sat"
    assert rec["codes"] == [[1, 1], [2, 2], [3, 3]]
    with pytest.raises(SwapError, match="transcripts differ"):
        swap_documents(rec, doc([[1, 1]] * 3, text="a dog ran"), [0])
    with pytest.raises(SwapError, match="word counts differ"):
        swap_documents(doc([[1], [2]], text="a b"), doc([[1], [2], [3]], text="a b"), [0])
    tagged = {**rec, "format": "taste-codes/2", "tokenizer": "aaaaaaaaaaaaaaaa"}
    with pytest.raises(SwapError, match="different tokenizers"):
        swap_documents(tagged, {**don, "format": "taste-codes/2", "tokenizer": "bbbbbbbbbbbbbbbb"}, [1])
    assert swap_documents(tagged, {**don, "tokenizer": "aaaaaaaaaaaaaaaa"}, [1])["tokenizer"] == "aaaaaaaaaaaaaaaa"


def test_parse_words():
    assert parse_words("2, 0", None, 5, 0) == [2, 0]
    assert parse_words(None, "first_third", 6, 0) == [0, 1]
    with pytest.raises(SwapError, match="exactly one"):
        parse_words("1", "single", 5, 0)
    with pytest.raises(SwapError, match="comma-separated"):
        parse_words("one", None, 5, 0)


def test_cli_writes_swapped_codes(tmp_path, capsys):
    from taste.cli import main

    rec, don = tmp_path / "rec.json", tmp_path / "don.json"
    rec.write_text(json.dumps(doc([[1, 1], [2, 2], [3, 3]])))
    don.write_text(json.dumps(doc([[7, 7], [8, 8], [9, 9]])))
    out = tmp_path / "out" / "swapped.json"
    main(["swap", str(rec), str(don), "--words", "0,2", "-o", str(out)])
    assert json.loads(out.read_text())["codes"] == [[7, 7], [2, 2], [9, 9]]
    assert "words [0, 2] of 3" in capsys.readouterr().out
