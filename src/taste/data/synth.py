"""Offline speech synthesis with libespeak-ng (PyPI espeakng-loader) through ctypes, with ground-truth alignments.

Word and phoneme events of the synth callback carry sample positions (22050 Hz), which become the word and phone
alignments. Per-word prosody is SSML markup: rate=60% / pitch=+30% wrap the word in <prosody>, break=250ms follows it.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .audio_io import resample
from .records import PhoneAlignment, WordAlignment

ESPEAK_SR = 22050
_SYNCHRONOUS, _PHONEME_EVENTS, _DONT_EXIT = 2, 0x0001, 0x8000
_CHARS_UTF8, _SSML = 0x01, 0x10
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EV_END, _EV_WORD, _EV_PHONEME = 0, 1, 7


class SynthesisError(RuntimeError):
    """espeak-ng failed, or its events do not match the words of the text."""


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class RawSynthesis:
    """Output of one espeak call: int16 samples at 22050 Hz and the (kind, sample, phone) events in stream order."""

    samples: np.ndarray
    events: tuple[tuple[int, int, str | int], ...]  # (WORD, sample, text position) or (PHONEME, sample, name)


class Espeak:
    """libespeak-ng through ctypes. Use `Espeak.get()` (one per process).

    The library keeps static state across calls (e.g. its pitch-flutter phase), so the same text came out a few samples
    different depending on what was spoken before. Each utterance is therefore spoken by a freshly loaded copy of the
    library (dlopen -> speak -> dlclose, ~10 ms), which makes the audio a pure function of its inputs.
    """

    _instance: "Espeak | None" = None

    def __init__(self) -> None:
        import espeakng_loader

        self._lib_path = espeakng_loader.get_library_path()
        self._data_path = espeakng_loader.get_data_path().encode()
        self._libc = ctypes.CDLL(None)
        self._phone_counts: dict[str, int] = {}
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str | int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not

    @classmethod
    def get(cls) -> "Espeak":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_END:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self._events.append((ev.type, ev.sample, bytes(ev.id).split(b"\0")[0].decode("ascii", "replace")))
            elif ev.type == _EV_WORD:
                self._events.append((ev.type, ev.sample, ev.text_position))
            i += 1
        return 0

    def _open(self) -> ctypes.CDLL:
        lib = ctypes.CDLL(self._lib_path)
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        sr = lib.espeak_Initialize(_SYNCHRONOUS, 0, self._data_path, _PHONEME_EVENTS | _DONT_EXIT)
        if sr != ESPEAK_SR:
            raise SynthesisError(f"espeak_Initialize returned {sr}, expected {ESPEAK_SR} Hz")
        lib.espeak_SetSynthCallback(self._callback)
        return lib

    def _close(self, lib: ctypes.CDLL) -> None:
        import _ctypes

        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def phone_count(self, word: str) -> int:
        """Phones espeak gives `word` spoken alone (known for every word of an utterance once it was spoken)."""
        return self._phone_counts[word]

    def _count_phones(self, lib: ctypes.CDLL, words) -> None:
        for word in words:  # TextToPhonemes crashes before a voice is set: only called after SetVoiceByName
            if word not in self._phone_counts:
                ptr = ctypes.c_char_p(word.encode("utf-8"))
                phones = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("|") << 8) or b""
                self._phone_counts[word] = len([p for p in phones.decode("ascii", "replace").split("|") if p.strip()])

    def synth(self, ssml: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int = 50,
              words: tuple[str, ...] = ()) -> RawSynthesis:
        """Speak an SSML string. SetVoiceByName comes first: it resets rate/pitch and phoneme calls need it."""
        lib = self._open()
        try:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise SynthesisError(f"espeak-ng has no voice {voice!r}")
            for param, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
                lib.espeak_SetParameter(param, int(value), 0)
            self._chunks, self._events = [], []
            self._libc.srand(0)
            lib.espeak_ng_SetRandSeed(0)  # espeak draws noise from a generator seeded by the clock otherwise
            data = ssml.encode("utf-8")
            err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _SSML, None, None)
            if err != 0:
                raise SynthesisError(f"espeak_Synth failed with code {err} on {ssml!r}")
            self._count_phones(lib, words)
        finally:
            self._close(lib)
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return RawSynthesis(samples, tuple(self._events))


def build_ssml(words: tuple[str, ...], markups: tuple[str | None, ...]) -> tuple[str, tuple[int, ...]]:
    """Words plus per-word markup ("rate=60%", "pitch=+30%", "break=250ms") -> (SSML <speak> string,
    1-based character position of each word, which is what espeak's word events report)."""
    if len(words) != len(markups):
        raise ValueError(f"{len(words)} words but {len(markups)} markups")
    ssml, positions = "<speak>", []
    for i, (word, markup) in enumerate(zip(words, markups)):
        key, _, value = (markup or "").partition("=")
        if key not in ("", "rate", "pitch", "break"):
            raise ValueError(f"unknown word markup {markup!r}")
        ssml += " " if i else ""
        if key in ("rate", "pitch"):
            ssml += f'<prosody {key}="{value}">'
        positions.append(len(ssml) + 1)
        ssml += word
        ssml += {"rate": "</prosody>", "pitch": "</prosody>", "break": f'<break time="{value}"/>'}.get(key, "")
    return ssml + "</speak>", tuple(positions)


def _phones_by_word_event(events, n_samples: int, words: tuple[str, ...], positions: tuple[int, ...]
                          ) -> list[tuple[int, list[tuple[int, int, str]]]]:
    """[(index of the first word an espeak word event speaks, its phones as (start, end, name) samples)], in stream
    order. A phone ends where the next phoneme event starts; pause phones ('_...') are dropped."""
    phone_events = [(s, name) for kind, s, name in events if kind == _EV_PHONEME]
    ends = [phone_events[i + 1][0] if i + 1 < len(phone_events) else n_samples for i in range(len(phone_events))]

    n_events = sum(1 for kind, _, _ in events if kind == _EV_WORD)
    order = iter(range(len(words)))
    start_of = {pos: i for i, pos in enumerate(positions)}

    def word_at(char: int) -> int:
        """One event per word: take them in order. Fewer (merged words): espeak points at the word's first
        character or at the space before it."""
        if n_events == len(words):
            return next(order)
        for c in (char, char + 1):
            if c in start_of:
                return start_of[c]
        raise SynthesisError(f"espeak word event at character {char} matches no word of {' '.join(words)!r}")

    groups: list[tuple[int, list[tuple[int, int, str]]]] = []
    p = 0
    for kind, sample, value in events:
        if kind == _EV_WORD:
            groups.append((word_at(value), []))
        elif kind == _EV_PHONEME:
            if groups and not value.startswith("_"):
                groups[-1][1].append((sample, ends[p], value))
            p += 1
    starts = [g[0] for g in groups]
    if starts != sorted(set(starts)) or not starts or starts[0] != 0:
        raise SynthesisError(f"espeak word events out of order for {' '.join(words)!r}")
    return groups


def _split_merged_words(groups: list[tuple[int, list[tuple[int, int, str]]]], words: tuple[str, ...],
                        phone_count: Callable[[str], int]) -> list[list[tuple[int, int, str]]]:
    """One phone list per word: an event that speaks several words gives each of the first ones its own phone
    count (the word spoken alone) and the last one the rest."""
    per_word: list[list[tuple[int, int, str]]] = []
    for g, (first, phones) in enumerate(groups):
        last = groups[g + 1][0] if g + 1 < len(groups) else len(words)
        for w in range(first, last - 1):  # words merged into this event: peel off their own phones
            k = phone_count(words[w])
            per_word.append(phones[:k])
            phones = phones[k:]
        per_word.append(phones)
    return per_word


def events_to_alignments(events, n_samples: int, words: tuple[str, ...], markups, positions: tuple[int, ...],
                         phone_count: Callable[[str], int], sr: int = ESPEAK_SR):
    """Word and phone alignments (seconds) from espeak events in stream order.

    A phone ends where the next phoneme event starts; pause phones ('_...') and zero-length ones are dropped.
    A word spans from its first to its last phone, so a following pause is not part of the word.
    espeak speaks some pairs ("in the") as one word with one event: the merged phones are split by the phone
    count of each word spoken alone.
    """
    groups = _phones_by_word_event(events, n_samples, words, positions)
    word_al, phone_al = [], []
    for word, markup, phones in zip(words, markups, _split_merged_words(groups, words, phone_count)):
        phones = [ph for ph in phones if ph[1] > ph[0]]
        if not phones:
            raise SynthesisError(f"espeak produced no phones for word {word!r} of {' '.join(words)!r}")
        start, end = phones[0][0], phones[-1][1]
        word_al.append(WordAlignment(word, round(start / sr, 5), round((end - start) / sr, 5), markup))
        phone_al += [PhoneAlignment(n, round(s / sr, 5), round((e - s) / sr, 5)) for s, e, n in phones]
    return tuple(word_al), tuple(phone_al)


@dataclass(frozen=True)
class Synthesised:
    wav: np.ndarray  # float32 [T] at the target rate
    words: tuple[WordAlignment, ...]
    phones: tuple[PhoneAlignment, ...]

    @property
    def duration(self) -> float:
        return len(self.wav) / 16000.0


def synthesise(words: tuple[str, ...], markups: tuple[str | None, ...], voice: str, rate_wpm: int, pitch: int,
               *, pitch_range: int = 50, dither: float = 0.0, dither_seed: int = 0,
               sample_rate: int = 16000) -> Synthesised:
    """Speak `words` with per-word markup -> float32 wav at `sample_rate`, dithered, with ground-truth alignments."""
    engine = Espeak.get()
    ssml, positions = build_ssml(words, markups)
    raw = engine.synth(ssml, voice, rate_wpm, pitch, pitch_range, words)
    if raw.samples.size == 0:
        raise SynthesisError(f"espeak produced no audio for {' '.join(words)!r}")
    word_al, phone_al = events_to_alignments(raw.events, len(raw.samples), words, markups, positions,
                                             engine.phone_count)
    wav = raw.samples.astype(np.float32) / 32768.0
    if sample_rate != ESPEAK_SR:
        wav = resample(wav, ESPEAK_SR, sample_rate)
    if dither > 0:  # espeak's pauses are exact zeros; models and validators should never see digital silence
        wav = wav + np.random.default_rng(dither_seed).normal(0.0, dither, wav.shape).astype(np.float32)
    peak = float(np.abs(wav).max())
    if peak > 0.95:
        wav = wav * (0.95 / peak)
    return Synthesised(wav.astype(np.float32), word_al, phone_al)
