"""espeak-ng, in process, through ctypes: the embedded TTS engine that needs no network.

libespeak-ng keeps its state in globals and is not thread-safe, so every call into it runs on one
dedicated worker thread shared by all `EspeakEngine` instances in the process. The library runs in
AUDIO_OUTPUT_SYNCHRONOUS mode: `espeak_Synth` synthesises on the calling (worker) thread and hands
each buffer of samples to our callback as soon as it is made. The callback forwards it to the event
loop with `call_soon_threadsafe`, so the first frame can play while the rest is still synthesised,
and synthesis never holds the loop (ctypes releases the GIL for the length of the C call).

API reference: espeak-ng `speak_lib.h` (1.51, Debian 12's libespeak-ng1).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np

from voxswitch.voice.tts.base import Framer, TtsError, Voice
from voxswitch.voice.tts.resample import Resampler

ENGINE = "espeak"
NATIVE_RATE = 22050  # espeak-ng always synthesises at 22050 Hz; espeak_Initialize confirms it.

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK, _EE_INTERNAL_ERROR, _EE_BUFFER_FULL, _EE_NOT_FOUND = 0, -1, 1, 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_BUFFER_MS = 20  # size of each buffer espeak hands the callback; small = earlier first audio


class _EspeakVoice(ctypes.Structure):
    # `languages` is a list of (priority byte, NUL-terminated name) pairs ending in a zero byte,
    # so it is read as a raw pointer, not as c_char_p (which would stop at the first NUL).
    _fields_: ClassVar[list[tuple[str, Any]]] = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); return 1 to abort.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_Sink = Callable[[np.ndarray], bool]  # takes a chunk, returns False to abort synthesis


def _languages(ptr: int | None) -> tuple[str, ...]:
    out: list[str] = []
    if not ptr:
        return ()
    pos = ptr
    while ctypes.c_ubyte.from_address(pos).value != 0:  # priority byte; 0 ends the list
        name = ctypes.string_at(pos + 1)
        out.append(name.decode("utf-8", "replace"))
        pos += 1 + len(name) + 1
    return tuple(out)


class _Library:
    """The process-wide libespeak-ng handle and the one thread allowed to call it."""

    _instance: ClassVar[_Library | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, data_path: str | None) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak-ng")
        self._data_path = data_path
        self._lib: Any = None
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # kept referenced for the process lifetime
        self._sink: _Sink | None = None
        self.sample_rate = NATIVE_RATE

    @classmethod
    def get(cls, data_path: str | None = None) -> _Library:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls(data_path)
            return cls._instance

    # --- everything below runs on the worker thread only ------------------------------------------

    def _ensure(self) -> Any:
        if self._lib is not None:
            return self._lib
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise TtsError(ENGINE, f"libespeak-ng not found ({exc}); install the libespeak-ng1 package") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_EspeakVoice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        path = self._data_path.encode() if self._data_path else None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise TtsError(ENGINE, "espeak_Initialize failed (espeak-ng-data missing or unreadable?)")
        if rate != NATIVE_RATE:
            raise TtsError(ENGINE, f"libespeak-ng synthesises at {rate} Hz, expected {NATIVE_RATE}")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        return lib

    def _on_audio(self, wav: Any, numsamples: int, _events: Any) -> int:
        sink = self._sink
        if sink is None:
            return 1
        if numsamples > 0 and wav:
            chunk = np.ctypeslib.as_array(wav, shape=(numsamples,)).astype(np.int16, copy=True)
            if not sink(chunk):
                return 1
        return 0

    def synth(self, text: str, voice: str | None, language: str | None, params: dict[int, int], sink: _Sink) -> None:
        lib = self._ensure()
        if voice:
            rc = lib.espeak_SetVoiceByName(voice.encode())
            what = f"voice {voice!r}"
        else:
            spec = _EspeakVoice()
            lang = (language or "en").lower().encode()
            spec.languages = ctypes.cast(ctypes.c_char_p(lang), ctypes.c_void_p)
            rc = lib.espeak_SetVoiceByProperties(ctypes.byref(spec))
            what = f"language {language!r}"
        if rc != _EE_OK:
            raise TtsError(ENGINE, f"unknown {what}")
        for param, value in params.items():
            lib.espeak_SetParameter(param, value, 0)
        data = text.encode("utf-8") + b"\0"
        self._sink = sink
        try:
            rc = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            self._sink = None
        if rc not in (_EE_OK,):
            raise TtsError(ENGINE, f"espeak_Synth failed with code {rc}")

    def list_voices(self) -> list[Voice]:
        lib = self._ensure()
        arr = lib.espeak_ListVoices(None)
        out: list[Voice] = []
        i = 0
        while arr[i]:
            v = arr[i].contents
            gender = {1: "male", 2: "female"}.get(v.gender)
            out.append(Voice((v.identifier or v.name or b"").decode(), _languages(v.languages), gender))
            i += 1
        return out

    def warm(self) -> None:
        self._ensure()


class EspeakEngine:
    """The embedded engine. `rate` is words per minute (80-450), `pitch` and `pitch_range` 0-100.

    Frames come at espeak's native 22050 Hz unless `output_rate` asks for another (8000 for G.711),
    in which case they are resampled as they stream. `voice` is an espeak-ng voice name (`en-us`,
    `gmw/de`, `en-us+f3` for a variant, or any name `voices()` lists) and wins over `language`,
    which picks the best voice for a language code (`de`, `en-GB`).
    """

    def __init__(
        self,
        *,
        default_voice: str | None = None,
        default_language: str = "en-us",
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
        output_rate: int | None = None,
        data_path: str | None = None,
    ) -> None:
        self._lib = _Library.get(data_path)
        self._default_voice = default_voice
        self._default_language = default_language
        self._params = {_RATE: rate, _PITCH: pitch, _RANGE: pitch_range, _VOLUME: volume}
        self._rate = output_rate or NATIVE_RATE

    @property
    def name(self) -> str:
        return ENGINE

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def cache_tag(self) -> str:
        """What besides voice, language and text changes the audio; part of the cache key."""
        return "espeak:" + ",".join(f"{k}={v}" for k, v in sorted(self._params.items())) + f"@{self._rate}"

    async def warm_up(self) -> None:
        """Loads the library and its data now, so the first real prompt does not pay for it."""
        await asyncio.get_running_loop().run_in_executor(self._lib.executor, self._lib.warm)

    async def voices(self) -> list[Voice]:
        return await asyncio.get_running_loop().run_in_executor(self._lib.executor, self._lib.list_voices)

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray | BaseException | None] = asyncio.Queue()
        abandoned = threading.Event()

        def post(item: np.ndarray | BaseException | None) -> bool:
            if abandoned.is_set():
                return False
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed under us
                abandoned.set()
                return False
            return True

        def job() -> None:
            try:
                self._lib.synth(
                    text,
                    voice or self._default_voice,
                    language or self._default_language,
                    self._params,
                    post,
                )
            except BaseException as exc:
                post(exc)
            finally:
                post(None)

        self._lib.executor.submit(job)
        resampler = Resampler(NATIVE_RATE, self._rate) if self._rate != NATIVE_RATE else None
        framer = Framer(self._rate)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                for frame in framer.push(resampler.process(item) if resampler else item):
                    yield frame
            if resampler:
                for frame in framer.push(resampler.flush()):
                    yield frame
            if (tail := framer.flush()) is not None:
                yield tail
        finally:
            abandoned.set()  # a consumer that stops early aborts synthesis at the next buffer

    async def aclose(self) -> None:
        """Nothing per engine: the library and its thread live for the process."""
