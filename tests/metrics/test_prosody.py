import numpy as np
import pytest

from synth_helper import synthesise
from taste.data.records import WordAlignment
from taste.metrics.prosody import f0_track, span_median, word_f0, word_prosody


def test_f0_of_a_pure_tone():
    t = np.arange(16000) / 16000
    track = f0_track((0.5 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))
    assert len(track) == pytest.approx(100, abs=2)
    assert np.nanmedian(track) == pytest.approx(150, rel=0.03)


def test_word_f0_follows_espeak_pitch():
    text = "the old man walked home"
    words = tuple(WordAlignment(w, 0.0, 0.0) for w in text.split())
    lo_wav, lo_starts = synthesise(text, pitch=20)
    hi_wav, hi_starts = synthesise(text, pitch=80)

    def spans(starts, total):
        ends = list(starts[1:]) + [total]
        return tuple(WordAlignment(w.word, s, e - s) for w, s, e in zip(words, starts, ends))

    lo = word_f0(lo_wav, spans(lo_starts, len(lo_wav) / 16000))
    hi = word_f0(hi_wav, spans(hi_starts, len(hi_wav) / 16000))
    assert np.nanmedian(hi) > 1.2 * np.nanmedian(lo)
    rows = word_prosody(hi_wav, spans(hi_starts, len(hi_wav) / 16000))
    assert [r["word"] for r in rows] == text.split() and rows[0]["duration"] > 0


def test_span_median_handles_unvoiced():
    track = np.array([np.nan, 100.0, 200.0, np.nan])
    assert span_median(track, 0.0, 0.04) == 150.0
    assert np.isnan(span_median(track, 0.0, 0.01))
    with pytest.raises(ValueError, match="mono"):
        f0_track(np.zeros((2, 100), np.float32))
