import numpy as np
import pytest

from synth_helper import synthesise
from taste.metrics.speaker import SpeakerEncoder, cosine


def test_same_voice_closer_than_other_voice():
    enc = SpeakerEncoder()
    a = enc.embed(synthesise("the cat sat on the warm mat", voice="en-us")[0])
    b = enc.embed(synthesise("my sister walked to the market", voice="en-us")[0])
    c = enc.embed(synthesise("the cat sat on the warm mat", voice="en-us+f3", pitch=80)[0])
    assert a.shape == (256,) and a.dtype == np.float32
    assert cosine(a, b) > cosine(a, c)
    assert cosine(a, a) == pytest.approx(1.0)


def test_cosine_and_bad_inputs():
    assert cosine([1, 0], [0, 2]) == pytest.approx(0.0)
    assert cosine([1, 1], [-2, -2]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        cosine([1, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="zero vector"):
        cosine([0, 0], [1, 0])
    with pytest.raises(ValueError, match="at least 0.1 s"):
        SpeakerEncoder().embed(np.zeros(10, np.float32))
