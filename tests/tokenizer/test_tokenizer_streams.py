"""Boundary convention and target streams against plain-Python references."""

import random

import pytest

from taste.tokenizer.streams import build_stream, parse_stream, word_boundaries, word_unit_counts


@pytest.mark.parametrize("seed", range(20))
def test_boundaries_cover_units_with_no_empty_word(seed):
    rng = random.Random(seed)
    n_words = rng.randint(1, 12)
    starts = sorted(rng.uniform(0, 4) for _ in range(n_words))
    n_units = rng.randint(n_words, 120)
    b = word_boundaries(starts, n_units, 25.0)
    assert b[0] == 0 and len(b) == n_words
    assert all(x < y for x, y in zip(b, b[1:])) and b[-1] < n_units
    counts = word_unit_counts(b, n_units)
    assert sum(counts) == n_units and min(counts) >= 1


def test_pause_belongs_to_previous_word_and_leading_silence_to_first():
    # words at 0.4 s and 1.2 s (25 Hz): leading 10 units go to word 0, word 0 runs to word 1's start
    assert word_boundaries([0.4, 1.2], 50, 25.0) == [0, 30]
    assert word_unit_counts([0, 30], 50) == [30, 20]


def test_too_few_units_is_an_error():
    with pytest.raises(ValueError, match="3 words but only 2 units"):
        word_boundaries([0.0, 0.1, 0.2], 2, 25.0)
    with pytest.raises(ValueError, match="no words"):
        word_boundaries([], 10, 25.0)


@pytest.mark.parametrize("seed", range(10))
def test_word_sync_stream_round_trip(seed):
    rng = random.Random(seed)
    n_codes = 16
    units = [rng.randrange(n_codes) for _ in range(rng.randint(5, 60))]
    n_words = rng.randint(1, min(5, len(units)))
    b = sorted(rng.sample(range(1, len(units)), n_words - 1))
    b = [0] + b
    stream = build_stream(units, b, "word_sync", n_codes)
    assert stream.count(n_codes) == n_words and stream[-1] == n_codes + 1
    got_units, counts = parse_stream(stream, n_codes)
    assert got_units == units and counts == word_unit_counts(b, len(units))


def test_prefix_stream_has_no_boundaries():
    stream = build_stream([3, 4, 5], [0, 1], "prefix", 8)
    assert stream == [3, 4, 5, 9]
    assert parse_stream(stream, 8) == ([3, 4, 5], [3])
