"""The phrase cache: a repeat is played from disk without synthesis; writes are atomic and bounded."""

from __future__ import annotations

import os
import time
import wave
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np

from tests.voice_tts.conftest import collect
from voxswitch.voice.tts import CachedEngine, EspeakEngine, TtsCache, Voice


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.wav"))


def all_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


class CountingEngine:
    """Wraps a real engine and counts how often it is asked to synthesise."""

    def __init__(self, inner: EspeakEngine) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        self.calls += 1
        async for frame in self.inner.synthesize(text, voice=voice, language=language):
            yield frame

    async def voices(self) -> list[Voice]:
        return await self.inner.voices()

    async def aclose(self) -> None:
        await self.inner.aclose()


class ToneEngine:
    """A deterministic engine: `len(text)` frames of a constant level, at 8 kHz."""

    name = "tone"
    sample_rate = 8000

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        for i in range(len(text)):
            yield np.full(160, i + 1, dtype=np.int16)

    async def voices(self) -> list[Voice]:
        return []

    async def aclose(self) -> None:
        return None


async def test_second_request_is_served_from_disk_without_synthesis(espeak: EspeakEngine, tmp_path: Path) -> None:
    counting = CountingEngine(espeak)
    cached = CachedEngine(counting, TtsCache(tmp_path))
    first = await collect(cached, "hello world", voice="en-us")
    assert counting.calls == 1
    second = await collect(cached, "hello world", voice="en-us")
    assert counting.calls == 1, "a cache hit must not synthesise"
    assert (cached.hits, cached.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)

    [entry] = entries(tmp_path)
    with wave.open(str(entry), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        assert w.getnframes() == first.size

    await collect(cached, "hello world", voice="de")  # another voice is another entry
    await collect(cached, "hello there", voice="en-us")  # and so is another text
    assert counting.calls == 3
    assert len(entries(tmp_path)) == 3


async def test_entries_are_written_atomically(tmp_path: Path) -> None:
    cached = CachedEngine(ToneEngine(), TtsCache(tmp_path))
    await collect(cached, "abc")
    files = all_files(tmp_path)
    assert len(files) == 1 and files[0].suffix == ".wav" and not files[0].name.startswith(".tmp-")


async def test_a_phrase_abandoned_midway_is_not_cached(tmp_path: Path) -> None:
    cached = CachedEngine(ToneEngine(), TtsCache(tmp_path))
    stream = cached.synthesize("a long phrase")
    await anext(stream)
    await stream.aclose()
    assert not entries(tmp_path)
    whole = await collect(cached, "a long phrase")
    assert whole.size == 13 * 160
    assert len(entries(tmp_path)) == 1


async def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    # Each entry: 10 frames * 160 samples * 2 bytes + 44-byte header = 3244 bytes.
    cache = TtsCache(tmp_path, max_bytes=3 * 3244)
    cached = CachedEngine(ToneEngine(), cache)
    for text in ("aaaaaaaaa0", "aaaaaaaaa1", "aaaaaaaaa2"):
        await collect(cached, text)
    oldest = cache.path(cache.key("tone", None, None, "aaaaaaaaa0", 8000))
    assert oldest.exists()
    # Age the entries in order, then hit entry 0: entry 1 becomes the least recently used.
    past = time.time() - 100
    for i, text in enumerate(("aaaaaaaaa0", "aaaaaaaaa1", "aaaaaaaaa2")):
        os.utime(cache.path(cache.key("tone", None, None, text, 8000)), (past + i, past + i))
    await collect(cached, "aaaaaaaaa0")
    await collect(cached, "aaaaaaaaa3")
    remaining = {p.name for p in entries(tmp_path)}
    assert len(remaining) == 3
    assert sum(p.stat().st_size for p in entries(tmp_path)) <= cache.max_bytes
    assert cache.path(cache.key("tone", None, None, "aaaaaaaaa1", 8000)).name not in remaining
    assert oldest.name in remaining


async def test_rate_is_part_of_the_entry(tmp_path: Path) -> None:
    cache = TtsCache(tmp_path)
    cached = CachedEngine(ToneEngine(), cache)
    await collect(cached, "abc")
    key = cache.key("tone", None, None, "abc", 8000)
    assert cache.open_blocks(key, 16000) is None  # same key, stored at another rate: a miss
    blocks = cache.open_blocks(key, 8000)
    assert blocks is not None
    assert np.concatenate(list(blocks)).size == 3 * 160
