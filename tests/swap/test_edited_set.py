"""One edited local set end to end (taste.swap.edited_set): a word-local fake tokenizer, whose middle-word code
follows the recording's length, must show full retention and transfer of the stretched word and no control."""
import pytest
import torch

from swap_fakes import FakeTokenizer
from test_edit import three_words
from test_swap_pitch import FakePitchVocoder
from taste.data.features import MelConfig
from taste.data.pitch import PitchConfig
from taste.swap.edit import EditSettings
from taste.swap.edited_set import measure_edited_set, middle_word_bases
from taste.swap.slope import SlopeSettings
from taste.swap.study import SwapSettings

SETTINGS = SwapSettings(seeds=(0, 1), spans=("single",), mismatch_span=None, batch_size=8, rate_hz=25.0)


class LengthReadingTokenizer(FakeTokenizer):
    """encode: every word codes 10 (it lasts 11 units when decoded), except the middle word, whose code grows with
    the frames the recording has beyond its two 0.4 s neighbours (4 mel frames per unit): a word-local encoder."""

    def encode(self, mel, text):
        n_words = len(text.split())
        codes = torch.full((n_words, 1), 10, dtype=torch.long)
        codes[n_words // 2, 0] = int(round((mel.shape[-1] - 80) / 4))
        return type("Codes", (), {"codes": codes})()


def test_middle_word_bases_take_the_middle_word_of_timed_recordings():
    wav, utt = three_words()
    short = utt.replace(id="u2", text="one two", words=utt.words[:2])
    untimed = utt.replace(id="u3", words=())
    assert [(u.id, j) for u, j in middle_word_bases([short, utt, untimed, utt.replace(id="u4")], 5)] == [
        ("u1", 1), ("u4", 1)]
    assert len(middle_word_bases([utt, utt.replace(id="u4")], 1)) == 1


def test_a_word_local_tokenizer_carries_the_stretched_word_and_only_it():
    wav, utt = three_words()
    bases = middle_word_bases([utt.replace(id=f"u{i}", pair=None) for i in range(4)], 10)
    written = []
    found = measure_edited_set(
        LengthReadingTokenizer(batched=True), FakePitchVocoder(), bases, lambda u: wav, EditSettings(), SETTINGS,
        lambda uid: torch.ones(256), MelConfig(), PitchConfig(), SlopeSettings(), n_boot=50, seed=0,
        write_wav=lambda name, w, sr: written.append(name) or f"out/{name}.flac")
    assert len(found.pairs) == 4 * 2 * 2  # four recordings, two edits, both directions
    assert sorted(written) == sorted(f"u{i}~{k}" for i in range(4) for k in ("stretch", "shift"))
    loc = found.slope["duration"]["local_rate_pairs"]
    assert loc["n_directed_pairs"] == 8
    assert loc["retention"]["value"] == pytest.approx(1.0, abs=0.1)
    assert loc["swap"]["word_j"]["value"] == pytest.approx(1.0, abs=0.05)
    assert loc["control"]["word_j"]["value"] == pytest.approx(0.0, abs=0.05)
    summary = found.summary(EditSettings())
    assert summary["n_recordings"] == 4 and summary["n_directed_pairs"] == 16
    assert found.seconds >= found.decode_seconds > 0
    with pytest.raises(ValueError, match="at least one base"):
        measure_edited_set(LengthReadingTokenizer(), FakePitchVocoder(), [], lambda u: wav, EditSettings(),
                           SETTINGS, lambda uid: torch.ones(256), MelConfig(), PitchConfig(), SlopeSettings(),
                           n_boot=50, seed=0)
