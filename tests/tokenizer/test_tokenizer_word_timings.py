"""Word timings are ground truth for the tokenizer (boundaries, durations, alignment spans): an utterance without
them is a clear error, never spread over the utterance by character count, unless the caller asks for untimed
items (then they carry no boundaries at all)."""

import pytest
import torch

from taste.data.records import Utterance, WordAlignment
from taste.tokenizer.data import Collate, MissingWordTimingsError, build_items
from taste.tokenizer.streams import word_boundaries

RATE_HZ = 25.0


class Store(dict):
    pass  # dict.get(utt_id) is all build_items needs of mels/speakers


def _world(mel, timed: bool):
    text = "the cat sat"
    words = tuple(WordAlignment(w, 0.1 + 0.3 * j, 0.25) for j, w in enumerate(text.split()))
    utts = [Utterance(id=f"u{i}", audio_path=f"u{i}.wav", duration=1.2, sample_rate=16000, text=text, speaker="s1",
                      split="train", rate_wpm=None, pitch=None, words=words if i == 0 or timed else ())
            for i in range(2)]
    ids = [u.id for u in utts]
    mels = Store({i: mel for i in ids})
    units = {i: torch.arange(30) % 8 for i in ids}
    speakers = Store({i: torch.randn(256) for i in ids})
    return utts, mels, units, speakers


def test_timed_items_use_the_given_timings(tokenizer, mel):
    utts, mels, units, speakers = _world(mel, timed=True)
    items = build_items(tokenizer, utts, mels, units, speakers, RATE_HZ)
    assert len(items) == 2 and all(it.has_timings for it in items)
    starts = [w.start for w in utts[0].words]
    assert items[0].word_starts_s == tuple(starts)
    assert items[0].word_durations_s == tuple(w.duration for w in utts[0].words)
    assert items[0].boundaries == tuple(word_boundaries(starts, 30, RATE_HZ))


def test_missing_timings_name_the_utterance_and_the_fix(tokenizer, mel):
    utts, mels, units, speakers = _world(mel, timed=False)  # u0 timed, u1 not
    with pytest.raises(MissingWordTimingsError, match=r"1 of 2 .*\['u1'\].*word timings.*forced alignment"):
        build_items(tokenizer, utts, mels, units, speakers, RATE_HZ)


def test_untimed_items_only_on_request_and_never_invented(tokenizer, mel):
    utts, mels, units, speakers = _world(mel, timed=False)
    items = build_items(tokenizer, utts, mels, units, speakers, RATE_HZ, allow_missing_timings=True)
    timed, untimed = items
    assert timed.has_timings and timed.word_starts_s == tuple(w.start for w in utts[0].words)
    assert not untimed.has_timings
    assert untimed.boundaries == () and untimed.word_starts_s == () and untimed.word_durations_s == ()
    assert untimed.text == "the cat sat" and untimed.keys.shape[0] > 0  # text and encoder states are there
    collate = Collate(tokenizer.cfg.conditioning, tokenizer.cfg.decoder.n_units, tokenizer.cfg.encoder_rate_hz)
    collate([timed])
    with pytest.raises(MissingWordTimingsError, match="u1"):
        collate([timed, untimed])  # never a training target
