"""Offline speech recognition for tests: which of a few known sentences a recording says.

PocketSphinx (PyPI ``pocketsphinx`` 5.x) ships its US English acoustic model and dictionary inside the
wheel, so nothing is downloaded at run time. Its model is trained on 16 kHz human speech, and our calls
carry espeak-ng's formant voice through G.711 at 8 kHz: an open vocabulary (the bundled n-gram model,
or a loop over the grammar's words) recognises almost none of that correctly. A closed grammar does:
``recognize`` is told the sentences that may have been said and answers which one was, with word times;
a test asserts ``recognize(recording, [expected, *others]).says(expected)``. Give it the sentences that
could plausibly be heard instead (ones sharing words with the expected one, other prompts): a recording
of one of them, of other speech, of silence or of noise then fails the check (tests/support_selfcheck
shows each). Sentences one word apart are told apart ("three" / "two" / "four" / "no new messages"),
but not every pair of words: espeak's "nine" comes out as "two" at 8 kHz.

Three settings decide the accuracy on telephone espeak (tests/support_selfcheck checks the result):
- ``bestpath`` off: the lattice rescoring after the grammar search drops the last word of a sentence
  that ends in a weak consonant ("help desk" came back as "help").
- beams of 1e-100, word beam 1e-80 (defaults 1e-48 and 7e-29): espeak's default voice otherwise loses
  the right path mid-sentence and the search ends outside the grammar (an empty answer): with 1e-80
  "This is a test call from Voxswitch." was missed in 4 of 10 takes, with these in none of 80. With a
  grammar of a few sentences the wider beams cost little time (0.1-0.4 s per recording).
- dither: digital silence (all zeros, as an RTP recorder writes before and after speech) otherwise
  gives log-of-zero features that shift the cepstral mean. We add it ourselves from a fixed seed rather
  than with PocketSphinx's ``dither``, whose random stream runs on across calls, so that a recording's
  answer does not depend on what was recognised before it.

Audio of any rate is resampled to the model's 16 kHz with soxr (voxswitch.media.resample); upsampled
8 kHz audio has no energy above 4 kHz, which the model copes with once the grammar is small.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.peers.availability import missing
from voxswitch.media.resample import load_wav, resample

MODEL_RATE = 16000  # the bundled en-us model's sample rate
FRAMES_PER_SECOND = 100  # PocketSphinx's default -frate
LEAD_SILENCE_S = 0.3  # padding, so a recording that starts mid-word still has a silence to start from

#: The least `Recognition.score` a sentence needs to count as said: a coarse net under the grammar. A
#: closed grammar picks the closest of its sentences, so speech that is none of them (another sentence,
#: or the right one reversed or sped up) can come out as one, and then fits badly. The score is the sum
#: of ln(ascore) of the sentence's words (PocketSphinx's acoustic score of each word) per second of them.
#: Measured on telephone espeak, default voice: sentences said -0.30 to -0.67; speech forced onto a
#: sentence it is not -0.70 to -1.0. So this rejects only the worse half of those: the words decide.
MIN_SCORE = -0.75

#: Words our tests say that CMUdict lacks, in CMUdict's phone set.
EXTRA_WORDS = {"voxswitch": "V AA K S W IH CH"}

_DECODER_CONFIG = {
    "lm": None,  # no n-gram model: the grammar is the only search
    "bestpath": False,
    "beam": 1e-100,
    "pbeam": 1e-100,
    "wbeam": 1e-80,
    "loglevel": "FATAL",
}


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds from the start of the recording, to the 10 ms frame
    end: float


@dataclass(frozen=True)
class Recognition:
    text: str  # the recognised sentence in words() form, or "" when no sentence of the grammar fits
    words: tuple[Word, ...]
    score: float  # how well the sentence fits the sound, per second of its words (see MIN_SCORE)
    decode_seconds: float  # wall time the search took (not counting loading and resampling)

    def says(self, sentence: str) -> bool:
        """The recording says ``sentence``: the grammar's best fit is it, and it fits well enough."""
        return self.text == normalise(sentence) and self.score >= MIN_SCORE

    def __str__(self) -> str:
        return self.text


def words(sentence: str) -> list[str]:
    """A sentence as the recogniser spells it: lower case, punctuation gone."""
    return re.findall(r"[a-z0-9']+", sentence.lower())


def normalise(sentence: str) -> str:
    return " ".join(words(sentence))


def jsgf(phrases: Sequence[str]) -> str:
    """A JSGF grammar (W3C JSGF 1.0) whose only sentences are ``phrases``."""
    alternatives = sorted({normalise(p) for p in phrases} - {""})
    if not alternatives:
        raise ValueError("the grammar needs at least one phrase with words in it")
    body = " | ".join(f"( {a} )" for a in alternatives)
    return f"#JSGF V1.0;\ngrammar sentences;\npublic <sentence> = {body} ;\n"


_lock = threading.Lock()  # one decoder per process; PocketSphinx decoders are not thread-safe


@cache
def _decoder() -> Any:
    try:
        import pocketsphinx
    except ImportError:
        missing("Python module pocketsphinx", ".venv/bin/pip install -e '.[test]'")
    decoder = pocketsphinx.Decoder(**_DECODER_CONFIG)
    for word, phones in EXTRA_WORDS.items():
        decoder.add_word(word, phones, True)
    return decoder


_searches: dict[str, str] = {}  # grammar text -> the name it was registered under


def _search(grammar: str, vocabulary: set[str]) -> str:
    """Registers ``grammar`` with the decoder once; the name to activate it by. Call under ``_lock``."""
    if grammar not in _searches:
        decoder = _decoder()
        unknown = sorted(w for w in vocabulary if decoder.lookup_word(w) is None)
        if unknown:
            raise ValueError(f"not in the recogniser's dictionary (add them to EXTRA_WORDS): {unknown}")
        name = f"sentences{len(_searches)}"
        decoder.add_jsgf_string(name, grammar)
        _searches[grammar] = name
    return _searches[grammar]


def _pcm(source: Path | str | npt.ArrayLike, rate: int | None) -> npt.NDArray[np.int16]:
    if isinstance(source, (str, Path)):
        return load_wav(source, MODEL_RATE)
    if rate is None:
        raise ValueError("samples need their rate")
    return resample(np.asarray(source, dtype=np.int16), rate, MODEL_RATE)


def recognize(source: Path | str | npt.ArrayLike, phrases: Sequence[str], *, rate: int | None = None) -> Recognition:
    """Which of ``phrases`` the audio says: a WAV file (any rate, width, channels) or int16 samples at ``rate``.

    Takes well under a second for a few seconds of audio (CPU-bound; run it in a thread from async code).
    """
    pcm = _pcm(source, rate)
    lead = np.zeros(int(LEAD_SILENCE_S * MODEL_RATE), dtype=np.int16)
    padded = np.concatenate([lead, pcm, lead]).astype(np.int32)
    padded += np.random.default_rng(0).integers(-1, 2, padded.shape[0])  # +-1 LSB, see "dither" above
    audio = np.clip(padded, -32768, 32767).astype(np.int16).tobytes()
    with _lock:
        decoder = _decoder()
        decoder.activate_search(_search(jsgf(phrases), {w for p in phrases for w in words(p)}))
        started = time.perf_counter()
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        took = time.perf_counter() - started
        hyp = decoder.hyp()
        segments = list(decoder.seg()) if hyp is not None else []
    # <s>, </s>, <sil>, [NOISE] and (NULL) transitions are not words.
    in_words = [s for s in segments if s.word and not s.word.startswith(("<", "[", "(NULL"))]
    spoken = tuple(
        Word(
            text=re.sub(r"\(\d+\)$", "", s.word),  # "to(2)": the dictionary's second pronunciation
            start=round(max(0.0, s.start_frame / FRAMES_PER_SECOND - LEAD_SILENCE_S), 2),
            end=round(max(0.0, (s.end_frame + 1) / FRAMES_PER_SECOND - LEAD_SILENCE_S), 2),
        )
        for s in in_words
    )
    frames = sum(s.end_frame - s.start_frame + 1 for s in in_words)
    fit = sum(math.log(max(s.ascore, 1e-300)) for s in in_words)
    score = round(fit * FRAMES_PER_SECOND / frames, 3) if frames else -math.inf
    text = hyp.hypstr if hyp is not None and in_words else ""
    return Recognition(text=text, words=spoken, score=score, decode_seconds=round(took, 3))
