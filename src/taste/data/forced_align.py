"""Pocketsphinx: corpus-LM recogniser and forced word / phone aligner (ARPAbet phones, 10 ms frames).

One implementation for two uses: the prepare stage aligns a corpus's known transcripts when the corpus gives no word
timings with `ForcedAligner` (data preparation: a dictionary from the corpus's own text, no language model, nothing
cached), and the study's judge wraps `Pocketsphinx` (the same aligner plus a corpus-LM recogniser), checking there
that its LM text never contains a sentence it scores. The recogniser's language model and dictionary are built from
corpus text (METHOD.md 5: near-zero WER on espeak speech with a corpus LM, poor with the generic one) and cached
under a key of the sentences and of the code that builds them (`resource_fingerprint`). Word pronunciations come from
pocketsphinx's bundled cmudict; words it lacks get one from espeak-ng (IPA mapped to ARPAbet), or a letter-by-letter
fallback when espeak cannot say them.

Alignment resets the decoder's feature extraction (its noise estimate and cepstral-mean state) before every utterance,
so an utterance's timings never depend on which utterances were aligned before it (that state used to carry over and
move boundaries by a frame or two). CMN is batch (the utterance's own mean) for every decoder here: the acoustic
model's feat.params says so, and the aligner's config states it explicitly.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio_io import resample
from .records import PhoneAlignment, WordAlignment
from .text_norm import normalise

FRAMES_PER_SECOND = 100
SAMPLE_RATE = 16000  # pocketsphinx's rate: other rates are resampled (audio_io.resample)
# Dithered silence around every input: the acoustic model expects silence before and after speech (and pocketsphinx's
# noise estimate mis-reads audio whose speech starts at sample 0).
PAD_SECONDS = 0.3
_DITHER = 3e-4
_NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "+NSN+", "+SPN+"}
_NON_PHONES = {"SIL", "+NSN+", "+SPN+"}
_RETRY_LEADS = (0.015, 0.035, 0.055)  # s of silence before a retried sub-word pass (not multiples of the 10 ms frame)
# Bump when what build_resources writes changes in a way the source hash would not show (e.g. a new cmudict rule).
RESOURCE_VERSION = 2


class AlignmentError(ValueError):
    """Forced alignment found no path through the given transcript."""


# espeak-ng en-us IPA phoneme -> ARPAbet (stress and length marks are dropped before lookup).
_IPA_TO_ARPA = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V", "θ": "TH", "ð": "DH",
    "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R",
    "w": "W", "j": "Y", "tʃ": "CH", "dʒ": "JH", "ɾ": "T", "ʔ": "T", "n̩": "N",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "eɪ": "EY", "ɛ": "EH", "æ": "AE", "a": "AA", "ɑ": "AA", "ɒ": "AA",
    "ɔ": "AO", "o": "OW", "oʊ": "OW", "əʊ": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH",
    "ɚ": "ER", "ɜ": "ER", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY",
    "əl": "AH L", "ɑɹ": "AA R", "ɔɹ": "AO R", "ɪɹ": "IH R", "ʊɹ": "UH R", "ɛɹ": "EH R", "oɹ": "AO R",
    "aɪɚ": "AY ER", "aɪə": "AY ER", "aʊɚ": "AW ER", "iə": "IY AH", "eə": "EH R", "ʊə": "UH R",
}
_LETTER_TO_ARPA = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH", "k": "K",
    "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V",
    "w": "W", "x": "K S", "y": "Y", "z": "Z",
}
_espeak = None


def letter_pronunciation(word: str) -> list[str]:
    """Crude one-phone-per-letter ARPAbet pronunciation: the last resort for words espeak cannot phonemise."""
    phones = " ".join(_LETTER_TO_ARPA[c] for c in word.lower() if c in _LETTER_TO_ARPA).split()
    if not phones:
        raise ValueError(f"cannot build a pronunciation for {word!r}: no letters a-z")
    return phones


def _espeak_lib():
    """libespeak-ng from espeakng-loader, initialised for phonemisation (voice set first: TextToPhonemes needs it)."""
    global _espeak
    if _espeak is None:
        import ctypes

        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8000)  # synchronous, don't exit
        lib.espeak_SetVoiceByName(b"en-us")
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        _espeak = lib
    return _espeak


def espeak_pronunciation(word: str) -> list[str]:
    """ARPAbet phones for `word` from espeak-ng's IPA output ([] when espeak is unavailable or yields nothing)."""
    import ctypes

    try:
        lib = _espeak_lib()
        ptr = ctypes.c_char_p(word.encode("utf-8"))
        ipa = lib.espeak_TextToPhonemes(ctypes.byref(ptr), 0, 0x02 | (ord(" ") << 8))  # IPA, space-separated
    except OSError:
        return []
    phones: list[str] = []
    for token in (ipa or b"").decode("utf-8").split():
        token = token.replace("ˈ", "").replace("ˌ", "").replace("ː", "")
        arpa = _IPA_TO_ARPA.get(token) or " ".join(_IPA_TO_ARPA.get(c, "") for c in token)
        phones += arpa.split()
    return phones


def _cmudict() -> dict[str, list[list[str]]]:
    """Bundled cmudict: word -> list of pronunciations (phone lists); variants like 'word(2)' folded in."""
    import pocketsphinx

    path = pocketsphinx.get_model_path("en-us/cmudict-en-us.dict")
    out: dict[str, list[list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            word = parts[0].split("(")[0]
            out.setdefault(word, []).append(parts[1:])
    return out


def pronunciations(words: Sequence[str], cmudict: dict[str, list[list[str]]] | None = None
                   ) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """Pronunciations for `words` -> (word -> phone lists, word -> source) with source cmudict | espeak | letters."""
    cmudict = _cmudict() if cmudict is None else cmudict
    prons: dict[str, list[list[str]]] = {}
    source: dict[str, str] = {}
    for word in sorted(set(words)):
        if word in cmudict:
            prons[word], source[word] = cmudict[word], "cmudict"
            continue
        phones = espeak_pronunciation(word)
        if phones:
            prons[word], source[word] = [phones], "espeak"
        else:
            prons[word], source[word] = [letter_pronunciation(word)], "letters"
    return prons, source


def _write_dict(path: Path, prons: dict[str, list[list[str]]]) -> None:
    lines = []
    for word, variants in sorted(prons.items()):
        for k, phones in enumerate(variants):
            name = word if k == 0 else f"{word}({k + 1})"
            lines.append(f"{name} {' '.join(phones)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def resource_fingerprint() -> str:
    """Hash of what builds the cached LM and dictionary: RESOURCE_VERSION, this module's source (pronunciation rules,
    IPA map, file formats), the pocketsphinx and espeakng-loader versions and the bundled cmudict's size and date."""
    from importlib.metadata import PackageNotFoundError, version

    import pocketsphinx

    h = hashlib.sha256(f"v{RESOURCE_VERSION}".encode())
    h.update(Path(__file__).read_bytes())
    for dist in ("pocketsphinx", "espeakng-loader"):
        try:
            h.update(f"|{dist}={version(dist)}".encode())
        except PackageNotFoundError:
            h.update(f"|{dist}=none".encode())
    stat = Path(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict")).stat()
    h.update(f"|cmudict={stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _corpus_sentences(sentences: Sequence[str]) -> list[str]:
    sents = [normalise(s) for s in sentences]
    return sorted({s for s in sents if s})


def build_resources(sentences: Sequence[str], cache_root: str | Path | None = None) -> tuple[Path, Path, dict[str, str]]:
    """Write (or reuse) the recogniser's corpus LM and dictionary -> (lm_path, dict_path, word -> pronunciation source).

    Cached under `cache_root` (default: the system temp folder) in a folder named by a hash of the sentences and of
    `resource_fingerprint()`, so a change to the code or lexicon that builds them never reuses a stale entry.
    """
    from pocketsphinx.lm import ArpaBoLM

    sents = _corpus_sentences(sentences)
    if not sents:
        raise ValueError("Pocketsphinx needs at least one non-empty corpus sentence to build its language model")
    key = hashlib.sha256((resource_fingerprint() + "\n" + "\n".join(sents)).encode("utf-8")).hexdigest()[:16]
    root = Path(cache_root or Path(tempfile.gettempdir()) / "taste_pocketsphinx") / key
    lm_path, dict_path, source_path = root / "corpus.lm", root / "corpus.dict", root / "sources.json"
    if lm_path.is_file() and dict_path.is_file() and source_path.is_file():
        return lm_path, dict_path, json.loads(source_path.read_text(encoding="utf-8"))
    prons, source = pronunciations([w for s in sents for w in s.split()])
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root))  # build beside, then rename: parallel builders never see half files
    lm = ArpaBoLM(text="\n".join(sents) + "\n", add_start=True)
    lm.compute()
    lm.write_file(str(tmp / "corpus.lm"))
    _write_dict(tmp / "corpus.dict", prons)
    (tmp / "sources.json").write_text(json.dumps(source), encoding="utf-8")
    for name in ("corpus.dict", "corpus.lm", "sources.json"):  # sources last: it marks a complete cache entry
        os.replace(tmp / name, root / name)
    tmp.rmdir()
    return lm_path, dict_path, source


def _to_pcm(wav16k: np.ndarray) -> bytes:
    """float [T] at 16 kHz -> padded, dithered int16 bytes (fixed-seed dither keeps results deterministic)."""
    wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"expected mono audio [T], got shape {wav.shape}")
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)
    wav = np.concatenate([pad, wav, pad])
    wav = wav + np.random.default_rng(0).normal(0.0, _DITHER, len(wav)).astype(np.float32)
    return (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _segment_words(decoder) -> list:
    """The word pass's real word segments (silences and noises left out)."""
    return [seg for seg in decoder.seg() or ()
            if seg.word.split("(")[0] not in _NON_WORDS and not seg.word.startswith("+")]


class ForcedAligner:
    """Forced word and phone aligner of known transcripts (pocketsphinx, no language model).

    `align(wav, text, sample_rate=16000) -> tuple[WordAlignment, ...]`, `align_phones(wav, text, sample_rate=16000)
    -> (words, phones)` (the same word alignment plus ARPAbet phone segments). `wav`: float mono [T] at `sample_rate`
    (resampled to 16 kHz by `audio_io.resample`). The dictionary holds the words of `sentences` (built in memory, no
    cache: a private temporary file only while the decoder loads it); words outside it get pronunciations on first
    use. Batch CMN: each utterance is normalised by its own cepstral mean, so its timings do not depend on what was
    aligned before. Every failure, pocketsphinx's own errors included, is an AlignmentError (a ValueError) whose
    message starts "forced alignment failed" or "phone alignment failed". `real_time_factor` = decoding seconds /
    audio seconds over all calls so far.
    """

    def __init__(self, sentences: Sequence[str]):
        """sentences: the texts to be aligned (their words make the dictionary)."""
        words = [w for s in _corpus_sentences(sentences) for w in s.split()]
        if not words:
            raise ValueError("the forced aligner needs at least one non-empty sentence for its dictionary")
        self._prons, self.pronunciation_source = pronunciations(words)
        self._setup()

    def _setup(self) -> None:
        import pocketsphinx

        self._hmm = pocketsphinx.get_model_path("en-us/en-us")
        self._align_decoder = None
        self._cmudict = None
        self._decode_s = 0.0
        self._audio_s = 0.0

    def _config(self, dict_path: Path, **kwargs):
        import pocketsphinx

        return pocketsphinx.Config(hmm=self._hmm, dict=str(dict_path), loglevel="FATAL", **kwargs)

    def _align_config(self, dict_path: Path):
        """The alignment decoder's config: no language model, batch CMN (as the acoustic model's feat.params)."""
        return self._config(dict_path, lm=None, cmn="batch")

    def _new_align_decoder(self):
        import pocketsphinx

        with tempfile.TemporaryDirectory(prefix="taste_aligner_") as folder:  # read once by the decoder, then gone
            path = Path(folder) / "aligner.dict"
            _write_dict(path, self._prons)
            return pocketsphinx.Decoder(self._align_config(path))

    def load(self) -> None:
        """Build the alignment decoder now (it is otherwise built on first use); pocketsphinx's errors propagate."""
        self._decoder()

    def _decoder(self, lm: bool = False):
        if lm:
            raise TypeError("ForcedAligner has no language model: use Pocketsphinx to recognise speech")
        if self._align_decoder is None:
            self._align_decoder = self._new_align_decoder()
        return self._align_decoder

    def _run(self, decoder, wav16k: np.ndarray, fresh: bool = True) -> None:
        """Decode one utterance; `fresh`: reset feature extraction first (its state - the cepstral mean among it -
        otherwise carries over from the previous utterance and moves boundaries by a frame or two)."""
        pcm = _to_pcm(wav16k)
        t0 = time.perf_counter()
        if fresh:
            decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        self._decode_s += time.perf_counter() - t0
        self._audio_s += len(wav16k) / SAMPLE_RATE

    @property
    def real_time_factor(self) -> float:
        return self._decode_s / self._audio_s if self._audio_s else float("nan")

    def _ensure_words(self, decoder, words: Sequence[str]) -> None:
        """Add pronunciations for words outside the dictionary (alignment of arbitrary text)."""
        missing = [w for w in set(words) if decoder.lookup_word(w) is None]
        if not missing:
            return
        if self._cmudict is None:
            self._cmudict = _cmudict()
        prons, source = pronunciations(missing, self._cmudict)
        for word in sorted(prons):
            decoder.add_word(word, " ".join(prons[word][0]), True)
            self.pronunciation_source[word] = source[word]

    def align(self, wav: np.ndarray, text: str, sample_rate: int = SAMPLE_RATE) -> tuple[WordAlignment, ...]:
        """Force-align `text` to `wav: np.ndarray[T]` at `sample_rate` -> one WordAlignment per word of normalise(text).

        Times are in seconds from the start of `wav`, 10 ms resolution. Raises AlignmentError when no alignment
        exists (e.g. audio too short for the words) and ValueError for an empty transcript.
        """
        return self._align_words(resample(wav, sample_rate, SAMPLE_RATE), text)

    def _align_words(self, wav16k: np.ndarray, text: str) -> tuple[WordAlignment, ...]:
        words = normalise(text).split()
        if not words:
            raise ValueError("align() needs a non-empty transcript")
        duration = len(wav16k) / SAMPLE_RATE
        decoder = self._decoder()  # outside the try: a decoder that cannot be built fails the run, not one utterance
        try:
            self._ensure_words(decoder, words)
            decoder.set_align_text(" ".join(words))
            self._run(decoder, wav16k)
            segments = decoder.seg()
        except RuntimeError as e:  # pocketsphinx's own failures (e.g. a transcript it cannot compile)
            raise AlignmentError(f"forced alignment failed: pocketsphinx error for {len(words)} words in "
                                 f"{duration:.2f} s of audio ({e})") from e
        if segments is None:
            raise AlignmentError(f"forced alignment failed: no path for {len(words)} words in {duration:.2f} s "
                                 f"of audio: {' '.join(words)!r}")
        out = []
        for seg in segments:
            word = seg.word.split("(")[0]
            if word in _NON_WORDS or word.startswith("+"):
                continue
            start = seg.start_frame / FRAMES_PER_SECOND - PAD_SECONDS
            dur = (seg.end_frame - seg.start_frame + 1) / FRAMES_PER_SECOND
            out.append(WordAlignment(word=word, start=round(max(start, 0.0), 4), duration=round(dur, 4)))
        if [a.word for a in out] != words:
            raise AlignmentError(f"forced alignment failed: it returned {[a.word for a in out]} for {words}")
        return tuple(out)

    def align_phones(self, wav: np.ndarray, text: str, sample_rate: int = SAMPLE_RATE
                     ) -> tuple[tuple[WordAlignment, ...], tuple[PhoneAlignment, ...]]:
        """Force-align `text` -> (`align(wav, text, sample_rate)`, the ARPAbet phones of those words, silences left
        out).

        Every phone lies inside its word, and every word gets exactly the phones of the pronunciation the word pass
        chose for it (checked after each pass: a pass that loses a phone counts as failed). The phones come from
        pocketsphinx's sub-word pass over the word alignment; where that pass fails (it holds each phone to the
        word-pass segmentation, which now and then leaves a phone too few frames) it is retried behind a little
        leading silence (another frame grid), and as a last resort the utterance's phones are aligned as one-phone
        pseudo-words, each clipped to its own word's span. Times are in seconds from the start of `wav` (10 ms
        frames). Raises AlignmentError / ValueError as `align` does, and AlignmentError when no pass gives every
        word its phones.
        """
        wav16k = resample(wav, sample_rate, SAMPLE_RATE)
        words = self._align_words(wav16k, text)
        decoder = self._decoder()
        prons = [decoder.lookup_word(seg.word).split() for seg in _segment_words(decoder)]
        for lead in (0.0, *_RETRY_LEADS):
            try:
                return words, self._subword_pass(wav16k, words, lead)
            except (RuntimeError, AlignmentError):
                continue
        try:
            return words, self._phone_pass(wav16k, words, prons)
        except RuntimeError as e:
            raise AlignmentError(f"phone alignment failed: pocketsphinx error in the phone pass for "
                                 f"{' '.join(w.word for w in words)!r} ({e})") from e

    def _subword_pass(self, wav16k: np.ndarray, words: Sequence[WordAlignment], lead: float
                      ) -> tuple[PhoneAlignment, ...]:
        """Phones from pocketsphinx's sub-word pass over the word pass (run just before by `align` when lead is 0;
        else re-run here on the audio behind `lead` s of silence, which moves the frame grid and the segmentation)."""
        decoder = self._decoder()
        if lead > 0:
            wav16k = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), np.asarray(wav16k, np.float32)])
            decoder.set_align_text(" ".join(w.word for w in words))
            self._run(decoder, wav16k)
            if decoder.seg() is None:
                raise AlignmentError("word pass failed")
        prons = [decoder.lookup_word(seg.word).split() for seg in _segment_words(decoder)]
        decoder.set_alignment()
        self._run(decoder, wav16k)
        return _checked(self._phones_of(decoder.get_alignment(), words, lead), words, prons)

    @staticmethod
    def _phones_of(alignment, words: Sequence[WordAlignment], lead: float = 0.0) -> list[list[PhoneAlignment]]:
        """Per word, the PhoneAlignments (seconds from the unpadded start) of a sub-word Alignment, clipped to it."""
        # Read everything in one nested pass: pocketsphinx's entries do not outlive the iteration that made them.
        real: list[list[tuple[str, int, int]]] = []
        for entry in alignment or ():
            if entry.name.split("(")[0] in _NON_WORDS or entry.name.startswith("+"):
                continue
            real.append([(ph.name, ph.start, ph.duration) for ph in entry if ph.name not in _NON_PHONES])
        if len(real) != len(words):
            raise AlignmentError(f"phone alignment returned {len(real)} words for {len(words)}")
        out: list[list[PhoneAlignment]] = []
        for word, phones in zip(words, real):
            out.append([p for name, start, duration in phones
                        for p in _clipped(name, start / FRAMES_PER_SECOND - PAD_SECONDS - lead,
                                          (start + duration) / FRAMES_PER_SECOND - PAD_SECONDS - lead, word)])
        return out

    def _phone_pass(self, wav16k: np.ndarray, words: Sequence[WordAlignment], prons: Sequence[list[str]]
                    ) -> tuple[PhoneAlignment, ...]:
        """Align the utterance's phones as one-phone pseudo-words; each phone is clipped to the span of its word."""
        decoder = self._decoder()
        names = [f"_phone_{p.lower()}" for pron in prons for p in pron]
        for name, phone in zip(names, (p for pron in prons for p in pron)):
            if decoder.lookup_word(name) is None:
                decoder.add_word(name, phone, True)
        decoder.set_align_text(" ".join(names))
        self._run(decoder, wav16k)
        segs = [s for s in decoder.seg() or () if s.word.split("(")[0].startswith("_phone_")]
        if [s.word.split("(")[0] for s in segs] != names:
            raise AlignmentError(f"phone alignment failed: {len(segs)} of {len(names)} phones aligned for "
                                 f"{' '.join(w.word for w in words)!r}")
        groups: list[list[PhoneAlignment]] = []
        k = 0
        for word, pron in zip(words, prons):
            groups.append([])
            for phone in pron:
                seg = segs[k]
                k += 1
                groups[-1] += _clipped(phone, seg.start_frame / FRAMES_PER_SECOND - PAD_SECONDS,
                                       (seg.end_frame + 1) / FRAMES_PER_SECOND - PAD_SECONDS, word)
        return _checked(groups, words, prons)


class Pocketsphinx(ForcedAligner):
    """Corpus-LM recogniser plus the forced aligner (`ForcedAligner`, sharing the recogniser's dictionary).

    `transcribe(wav16k: np.ndarray[T]) -> str` (normalised) besides `align` / `align_phones`. The LM and dictionary
    come from `build_resources` (cached, keyed by the sentences and `resource_fingerprint()`).
    """

    def __init__(self, corpus_sentences: Sequence[str], cache_root: str | Path | None = None):
        """corpus_sentences: the LM text and the dictionary's words; cache_root: see `build_resources`."""
        self.lm_path, self.dict_path, self.pronunciation_source = build_resources(corpus_sentences, cache_root)
        self._setup()
        self._lm_decoder = None

    def _new_align_decoder(self):
        import pocketsphinx

        return pocketsphinx.Decoder(self._align_config(self.dict_path))

    def _decoder(self, lm: bool = False):
        import pocketsphinx

        if not lm:
            return super()._decoder()
        if self._lm_decoder is None:
            self._lm_decoder = pocketsphinx.Decoder(self._config(self.dict_path, lm=str(self.lm_path)))
        return self._lm_decoder

    def transcribe(self, wav16k: np.ndarray) -> str:
        """Recognise `wav16k: np.ndarray[T]` (16 kHz float) -> normalised transcript ('' when nothing was heard)."""
        decoder = self._decoder(lm=True)
        # Every utterance starts on a fresh front end (noise estimate, cepstral mean), so a transcript depends on its
        # audio alone, not on what was transcribed before it (benchmarks/pocketsphinx_order.py measured the old
        # carried-over state: 24-31% of transcripts moved with call order, corpus WER within about 0.01).
        self._run(decoder, wav16k, fresh=True)
        hyp = decoder.hyp()
        return normalise(hyp.hypstr) if hyp is not None else ""


def _checked(groups: Sequence[Sequence[PhoneAlignment]], words: Sequence[WordAlignment],
             prons: Sequence[Sequence[str]]) -> tuple[PhoneAlignment, ...]:
    """Flatten per-word phones after checking that each word got exactly its pronunciation's phones, in order
    (clipping to the word's span, or a pass that went astray, can lose one); AlignmentError naming the word if not."""
    if len(groups) != len(words) or len(prons) != len(words):
        raise AlignmentError(f"phone alignment failed: phones for {len(groups)} words, pronunciations for "
                             f"{len(prons)}, {len(words)} words")
    for word, got, want in zip(words, groups, prons):
        if [p.phone for p in got] != list(want):
            raise AlignmentError(f"phone alignment failed: word {word.word!r} got phones "
                                 f"{' '.join(p.phone for p in got) or 'none'}, its pronunciation is {' '.join(want)}")
    return tuple(p for got in groups for p in got)

def _clipped(phone: str, start: float, end: float, word: WordAlignment) -> list[PhoneAlignment]:
    """[PhoneAlignment] of `phone` over [start, end) clipped to `word`'s span ([] when nothing is left)."""
    start, end = max(start, word.start), min(end, word.end)
    if end - start < 1e-6:
        return []
    return [PhoneAlignment(phone=phone, start=round(start, 4), duration=round(end - start, 4))]
