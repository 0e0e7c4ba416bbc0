"""Tiny corpus parameters shared by the data tests."""
import copy

import pytest

TINY = {
    "shared": {"seed": 7, "sample_rate": 16000,
               "features": {"n_fft": 400, "hop_length": 160, "n_mels": 80, "f_min": 0, "f_max": 8000}},
    "data": {
        "source": "synthetic", "root": None, "workers": 1,
        "text": {"n_stories": 12, "heldout_stories": 3, "min_words": 4, "max_words": 20, "sentences_per_story": [4, 7]},
        "speech": {"max_words": 14, "max_seconds": 10.0, "train_hours": 0.004, "dev_utterances": 2,
                   "test_utterances": 2, "n_train_speakers": 2, "n_test_speakers": 1, "rate_wpm": [110, 240],
                   "pitch": [25, 75], "word_markup_share": 0.25, "dither": 0.0003},
        "swap_sets": {"global_sentences": 1, "slow_wpm": 125, "fast_wpm": 220, "low_pitch": 20, "high_pitch": 80,
                      "local_pairs": 2},
        "real": {"subset": "test-clean", "download_url": None},
    },
    "prepare": {"max_rejection_share": 0.5, "chars_per_second": [2.0, 40.0], "clip_share": 0.01,
                "speaker_embedding": "resemblyzer", "speaker_partials_per_second": 1.3},
}


@pytest.fixture
def tiny_params():
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """One materialised tiny corpus shared by the tests that only read it."""
    from taste.data.materialise import materialise

    out = tmp_path_factory.mktemp("raw")
    info = materialise(copy.deepcopy(TINY), out)
    return out, info
