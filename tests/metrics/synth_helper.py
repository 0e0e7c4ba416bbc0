"""espeak-ng speech with ground-truth word starts, for the measurement-toolkit tests (ctypes on espeakng-loader)."""
from __future__ import annotations

import ctypes

import numpy as np
from scipy.signal import resample_poly

_EVENT_WORD, _EVENT_END_OF_LIST = 1, 0


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_state: dict = {}


def _lib():
    if "lib" not in _state:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        _state["sr"] = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8000)
        _state["lib"] = lib
    return _state["lib"]


def synthesise(text: str, rate_wpm: int = 160, pitch: int = 50, voice: str = "en-us", seed: int = 0
               ) -> tuple[np.ndarray, list[float]]:
    """-> (wav: float32 [T] at 16 kHz with a little dither, word start times in seconds from espeak's word events)."""
    lib = _lib()
    chunks: list[np.ndarray] = []
    starts: list[int] = []

    def on_audio(wav, n, events):
        if wav and n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            if events[i].type == _EVENT_WORD:
                starts.append(events[i].sample)
            i += 1
        return 0

    callback = _CALLBACK(on_audio)
    _state["callback"] = callback  # keep alive while espeak holds the pointer
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(1, int(rate_wpm), 0)
    lib.espeak_SetParameter(3, int(pitch), 0)
    data = text.encode("utf-8")
    lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
    lib.espeak_Synchronize()
    sr = _state["sr"]
    wav = resample_poly(np.concatenate(chunks).astype(np.float32) / 32768.0, 320, 441).astype(np.float32)
    wav += np.random.default_rng(seed).normal(0, 3e-4, len(wav)).astype(np.float32)
    return wav, [s / sr for s in starts]
