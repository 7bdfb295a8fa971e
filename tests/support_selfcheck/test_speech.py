"""The offline recogniser (tests/support/speech.py) on what a call carries: our espeak-ng voice, at 8 kHz,
through G.711. Each sentence of a small grammar is recognised as itself, even among sentences one word
apart, and the check a call test makes (``recognize(...).says(S)``) fails for a recording of another
sentence, of other speech, of noise, of silence, or of the right sentence mangled the way a media bug
would mangle it (played at twice the rate, cut short)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.support.speech import normalise, recognize
from voxswitch.media.codecs import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxswitch.voice.tts.espeak import NATIVE_RATE, EspeakEngine

RATE = 8000
# The call test's sentence and the others its grammar holds (tests/calls/test_app_calls_a_pjsip_phone.py),
# and three more prompts, so the grammar has sentences sharing most of their words.
EXPECTED = "This is Voxswitch calling you with a short recorded test."
SENTENCES = (
    EXPECTED,
    "Voxswitch is calling you to record a short test.",
    "This is a test call from Voxswitch.",
    "Enter your code and press pound.",
    "Please leave a message after the tone.",
    "Your call is important to us please hold the line.",
    "You have three new messages.",
    "Thank you for calling goodbye.",
)
OUT_OF_GRAMMAR = ("I would like to book a table for two.", "Turn left at the next corner.")
ONE_WORD_APART = (
    "You have three new messages.",
    "You have two new messages.",
    "You have four new messages.",
    "You have no new messages.",
)

Pcm = npt.NDArray[np.int16]


async def spoken(text: str, voice: str | None = None, *, rate: int = RATE) -> Pcm:
    """``text`` in our espeak-ng voice at ``rate``, as the app's media path makes it."""
    engine = EspeakEngine(output_rate=rate)
    return np.concatenate([frame async for frame in engine.synthesize(text, voice=voice)])


def over_g711(pcm: Pcm, law: str) -> Pcm:
    """What the far end decodes after the samples crossed a G.711 call."""
    if law == "PCMU":
        return ulaw_decode(ulaw_encode(pcm))
    return alaw_decode(alaw_encode(pcm))


@pytest.mark.parametrize(
    ("voice", "law"),
    [(None, "PCMU"), (None, "PCMA"), ("en-us+klatt", "PCMU")],
    ids=["default-voice-pcmu", "default-voice-pcma", "klatt-voice-pcmu"],
)
async def test_each_sentence_is_recognised_as_itself(voice: str | None, law: str) -> None:
    results = [recognize(over_g711(await spoken(s, voice), law), SENTENCES, rate=RATE) for s in SENTENCES]
    assert [r.text for r in results] == [normalise(s) for s in SENTENCES]
    assert all(r.says(s) for r, s in zip(results, SENTENCES, strict=True)), [r.score for r in results]


async def test_sentences_one_word_apart_are_told_apart() -> None:
    heard = [recognize(over_g711(await spoken(s), "PCMU"), ONE_WORD_APART, rate=RATE) for s in ONE_WORD_APART]
    assert [r.text for r in heard] == [normalise(s) for s in ONE_WORD_APART]


async def test_another_sentence_of_the_grammar_fails_the_check() -> None:
    """The call test's check, asked of recordings of the two sentences closest to its own."""
    for other in SENTENCES[1:3]:
        result = recognize(over_g711(await spoken(other), "PCMU"), SENTENCES, rate=RATE)
        assert not result.says(EXPECTED), (other, result)
        assert result.says(other), (other, result)


async def test_what_is_not_the_sentence_fails_the_check() -> None:
    right = over_g711(await spoken(EXPECTED), "PCMU")
    impostors: dict[str, Pcm] = {
        "silence": np.zeros(3 * RATE, dtype=np.int16),
        "noise": np.random.default_rng(7).normal(0, 3000, 3 * RATE).astype(np.int16),
        "played at twice the rate": right[::2].copy(),
        "its first half only": right[: right.shape[0] // 2].copy(),
    }
    for text in OUT_OF_GRAMMAR:
        impostors[text] = over_g711(await spoken(text), "PCMU")
    heard = {name: recognize(pcm, SENTENCES, rate=RATE) for name, pcm in impostors.items()}
    assert not any(r.says(EXPECTED) for r in heard.values()), heard
    assert heard["silence"].text == "" and heard["noise"].text == "", heard
    # The control: the same check passes on the sentence itself.
    assert recognize(right, SENTENCES, rate=RATE).says(EXPECTED)


async def test_words_are_placed_where_they_are_spoken() -> None:
    lead = np.zeros(RATE, dtype=np.int16)  # one second of silence, then the sentence
    speech = over_g711(await spoken(EXPECTED), "PCMU")
    result = recognize(np.concatenate([lead, speech, lead]), SENTENCES, rate=RATE)
    assert [w.text for w in result.words] == normalise(EXPECTED).split()
    end_of_speech = 1.0 + speech.shape[0] / RATE
    assert 0.9 <= result.words[0].start <= 1.3, result.words[0]
    assert end_of_speech - 0.4 <= result.words[-1].end <= end_of_speech + 0.2, (result.words[-1], end_of_speech)
    assert all(a.end <= b.start for a, b in zip(result.words, result.words[1:], strict=False)), result.words


async def test_a_wav_file_at_another_rate_is_resampled(tmp_path: Path) -> None:
    pcm = await spoken(EXPECTED, rate=NATIVE_RATE)  # espeak's own 22050 Hz, no telephone in between
    path = tmp_path / "wide.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(NATIVE_RATE)
        w.writeframes(pcm.tobytes())
    assert recognize(path, SENTENCES).text == normalise(EXPECTED)


def test_a_word_missing_from_the_dictionary_is_refused() -> None:
    with pytest.raises(ValueError, match="frobnicatorix"):
        recognize(np.zeros(RATE, dtype=np.int16), ["frobnicatorix is here"], rate=RATE)
