"""A disk cache of synthesised phrases, so a prompt played to every caller is synthesised (or paid for) once.

Entries are plain WAV files (16-bit mono, rate in the header), named by a hash of what determines
the audio: engine and its settings, voice, language, text and rate. Writes are atomic (temp file,
fsync, rename), so a crash or a concurrent writer never leaves a half-written entry to be played.
The directory is bounded in bytes; the least recently used entries go first (a hit refreshes mtime).
File I/O runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import wave
from collections.abc import AsyncGenerator, Generator
from pathlib import Path

import numpy as np

from voxswitch.voice.tts.base import Framer, TtsEngine, Voice

_SUFFIX = ".wav"
_READ_FRAMES = 22050  # samples read from disk per step while streaming a hit


class TtsCache:
    """WAV files under `directory`, at most `max_bytes` in total."""

    def __init__(self, directory: Path, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    @staticmethod
    def key(namespace: str, voice: str | None, language: str | None, text: str, sample_rate: int) -> str:
        raw = json.dumps([namespace, voice, language, text, sample_rate], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / (key + _SUFFIX)

    # --- blocking primitives (call through asyncio.to_thread) ------------------------------------

    def open_blocks(self, key: str, sample_rate: int) -> Generator[np.ndarray, None, None] | None:
        """Blocks of a stored entry, or None on a miss (or an entry at another rate, treated as a miss)."""
        path = self.path(key)
        try:
            wav = wave.open(str(path), "rb")  # closed by the generator below, or here
        except (FileNotFoundError, wave.Error, EOFError):
            return None
        if wav.getframerate() != sample_rate or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            wav.close()
            return None
        try:
            os.utime(path)  # LRU: a hit is a use
        except OSError:
            pass

        def blocks() -> Generator[np.ndarray, None, None]:
            with wav:
                while data := wav.readframes(_READ_FRAMES):
                    yield np.frombuffer(data, dtype="<i2").astype(np.int16)

        return blocks()

    def store(self, key: str, pcm: np.ndarray, sample_rate: int) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                with wave.open(fh, "wb") as wav:
                    wav.setnchannels(1)
                    wav.setsampwidth(2)
                    wav.setframerate(sample_rate)
                    wav.writeframes(pcm.astype("<i2").tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict()
        return path

    def evict(self) -> None:
        """Deletes least recently used entries until the directory fits `max_bytes`."""
        entries: list[tuple[float, int, Path]] = []
        for p in self.directory.glob("*/*" + _SUFFIX):
            if p.name.startswith(".tmp-"):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size


class CachedEngine:
    """Wraps an engine: a cached phrase streams from disk; a new one is synthesised and stored.

    Only a phrase synthesised to its end is stored, so a consumer that stops early (barge-in) never
    leaves a truncated prompt behind.
    """

    def __init__(self, engine: TtsEngine, cache: TtsCache, *, namespace: str | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.namespace = namespace or getattr(engine, "cache_tag", None) or engine.name
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    async def voices(self) -> list[Voice]:
        return await self.engine.voices()

    async def aclose(self) -> None:
        await self.engine.aclose()

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        rate = self.sample_rate
        key = self.cache.key(self.namespace, voice, language, text, rate)
        blocks = await asyncio.to_thread(self.cache.open_blocks, key, rate)
        if blocks is not None:
            self.hits += 1
            framer = Framer(rate)
            try:
                while (block := await asyncio.to_thread(next, blocks, None)) is not None:
                    for frame in framer.push(block):
                        yield frame
            finally:
                await asyncio.to_thread(blocks.close)
            if (tail := framer.flush()) is not None:
                yield tail
            return
        self.misses += 1
        frames: list[np.ndarray] = []
        stream = self.engine.synthesize(text, voice=voice, language=language)
        try:
            async for frame in stream:
                frames.append(frame)
                yield frame
        finally:
            await stream.aclose()  # stop the engine now (barge-in), not when GC finds it
        if frames:
            await asyncio.to_thread(self.cache.store, key, np.concatenate(frames), rate)
