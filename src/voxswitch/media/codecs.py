"""Audio codecs and the registry that maps SDP ``rtpmap`` names to them.

Theory of operation. A codec turns one frame (``frames.Frame``: int16 at the codec's *sample* rate) into
an RTP payload and back. The registry is keyed by the SDP encoding name (case-insensitive, RFC 4566 §6)
and the RTP *clock* rate, which is not always the sample rate: G.722 samples at 16 kHz but its RTP clock
runs at 8 kHz for historical reasons (RFC 3551 §4.5.2), and Opus always announces 48000 (RFC 7587 §4.1).

- PCMU / PCMA (ITU-T G.711, RFC 3551 §4.5.14): stateless, done with lookup tables built once with NumPy:
  a 65536-entry table indexed by the int16 sample's bit pattern for encode, a 256-entry one for decode.
  One frame costs two fancy-indexing calls; a batch of frames costs the same two calls.
  The encoder reproduces CPython's ``audioop`` (Sun's g711.c: drop to 14/13 bits with an arithmetic
  shift, then quantise). ITU-T G.191's reference takes the one's complement of negative samples before
  the shift, so for 508 of the 65536 negative µ-law inputs, which sit exactly on a decision boundary, it
  picks the neighbouring code. Both are valid G.711 quantisations and the decode tables are identical.
- L16 (RFC 3551 §4.5.11): big-endian int16, at 8 kHz or 16 kHz (dynamic payload types).
- G.722 (sippy's ``G722`` binding of the ITU reference code) and Opus (``opuslib`` over libopus) are
  registered only when their library imports; otherwise the entry stays, marked unavailable with the
  reason, so SDP negotiation can still name them and skip them.

Stateless codecs may be shared, but ``CodecSpec.create`` always returns a fresh instance: G.722 and Opus
carry predictor state, so every stream (every leg and direction) needs its own.

Relay without decode: when both legs of a bridge negotiated the same codec (same name and clock rate),
the media path copies payload bytes straight from one RTP session to the other and never decodes, which
is what lets one core relay hundreds of calls (DESIGN.md, limits). ``Transcoder.passthrough`` says when
that applies; decode, resample and encode happen only when the codecs differ. Encoding and decoding are
CPU work: callers on the event loop batch frames and run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from voxswitch.media.frames import FRAME_MS, Frame, samples_per_frame

__all__ = [
    "Codec",
    "CodecRegistry",
    "CodecSpec",
    "CodecUnavailableError",
    "G711Codec",
    "L16Codec",
    "Transcoder",
    "UnknownCodecError",
    "alaw_decode",
    "alaw_encode",
    "default_registry",
    "transcode",
    "ulaw_decode",
    "ulaw_encode",
]


class UnknownCodecError(KeyError):
    """No codec is registered under that encoding name and clock rate."""


class CodecUnavailableError(RuntimeError):
    """The codec is known but its library is not installed here."""


# --- G.711 lookup tables --------------------------------------------------------------------------
# Built once at import from the G.711 segment rules (Sun g711.c, as in CPython's audioop), vectorised.

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern so the result indexes by ``x.view(uint16)``."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 2  # 14-bit two's complement
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 33  # clip, then add the 14-bit bias (0x84 >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")  # first segment whose end >= mag
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F))
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 3  # 13-bit two's complement
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    quant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | quant)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _frozen(table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    table.flags.writeable = False
    return table


ULAW_ENCODE = _frozen(_build_ulaw_encode())
ALAW_ENCODE = _frozen(_build_alaw_encode())
ULAW_DECODE = _frozen(_build_ulaw_decode())
ALAW_DECODE = _frozen(_build_alaw_decode())


def _index(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 samples, got {arr.dtype}")
    return arr.reshape(-1).view(np.uint16)


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """µ-law encode any number of int16 samples (one frame or a batch) in one table lookup."""
    return ULAW_ENCODE[_index(samples)].tobytes()


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """A-law encode any number of int16 samples in one table lookup."""
    return ALAW_ENCODE[_index(samples)].tobytes()


def ulaw_decode(payload: bytes | bytearray | memoryview) -> Frame:
    """µ-law decode a payload of any length to int16 samples."""
    return ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes | bytearray | memoryview) -> Frame:
    """A-law decode a payload of any length to int16 samples."""
    return ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


# --- codec objects ---------------------------------------------------------------------------------


@runtime_checkable
class Codec(Protocol):
    """One direction-agnostic codec instance for one stream; holds whatever state the codec needs."""

    name: str
    clock_rate: int
    sample_rate: int
    payload_type: int | None

    def encode(self, frame: Frame) -> bytes: ...

    def decode(self, payload: bytes) -> Frame: ...


class _CodecBase:
    name: str
    clock_rate: int
    sample_rate: int
    payload_type: int | None

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms frame at the codec's sample rate."""
        return samples_per_frame(self.sample_rate, FRAME_MS)

    @property
    def frame_timestamp_step(self) -> int:
        """RTP timestamp increment per 20 ms frame (clock rate, not sample rate)."""
        return samples_per_frame(self.clock_rate, FRAME_MS)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.clock_rate} pt={self.payload_type}>"


class G711Codec(_CodecBase):
    """PCMU or PCMA: stateless table lookups; accepts batches of frames as well as single frames."""

    def __init__(self, law: str) -> None:
        if law == "PCMU":
            self._enc, self._dec, self.payload_type = ULAW_ENCODE, ULAW_DECODE, 0
        elif law == "PCMA":
            self._enc, self._dec, self.payload_type = ALAW_ENCODE, ALAW_DECODE, 8
        else:
            raise ValueError(f"not a G.711 law: {law}")
        self.name, self.clock_rate, self.sample_rate = law, 8000, 8000

    def encode(self, frame: Frame) -> bytes:
        return self._enc[_index(frame)].tobytes()

    def decode(self, payload: bytes) -> Frame:
        return self._dec[np.frombuffer(payload, dtype=np.uint8)]


class L16Codec(_CodecBase):
    """Linear 16-bit PCM in network byte order (RFC 3551 §4.5.11); stateless."""

    _BE = np.dtype(">i2")

    def __init__(self, rate: int, payload_type: int | None = None) -> None:
        self.name, self.clock_rate, self.sample_rate, self.payload_type = "L16", rate, rate, payload_type

    def encode(self, frame: Frame) -> bytes:
        return np.asarray(frame, dtype=np.int16).astype(self._BE).tobytes()

    def decode(self, payload: bytes) -> Frame:
        if len(payload) % 2:
            raise ValueError("L16 payload has an odd number of bytes")
        return np.frombuffer(payload, dtype=self._BE).astype(np.int16)


class G722Codec(_CodecBase):
    """G.722 at 64 kbit/s via sippy's binding; 16 kHz samples, 8 kHz RTP clock (RFC 3551 §4.5.2)."""

    def __init__(self, bitrate: int = 64000) -> None:
        import G722  # type: ignore[import-not-found, import-untyped, unused-ignore]  # optional; checked by _g722_available

        self.name, self.clock_rate, self.sample_rate, self.payload_type = "G722", 8000, 16000, 9
        # Encoder and decoder states are separate objects: one stream may both send and receive.
        self._encoder = G722.G722(16000, bitrate)
        self._decoder = G722.G722(16000, bitrate)

    def encode(self, frame: Frame) -> bytes:
        return bytes(self._encoder.encode(np.ascontiguousarray(frame, dtype=np.int16)))

    def decode(self, payload: bytes) -> Frame:
        return np.asarray(self._decoder.decode(payload), dtype=np.int16)


class OpusCodec(_CodecBase):
    """Opus (RFC 7587) via ``opuslib``: RTP clock 48000 always; we code mono at ``sample_rate`` directly."""

    def __init__(self, sample_rate: int = 16000, application: str = "voip") -> None:
        import opuslib  # type: ignore[import-not-found, import-untyped, unused-ignore]  # optional; checked by _opus_available

        self.name, self.clock_rate, self.sample_rate, self.payload_type = "opus", 48000, sample_rate, None
        self._encoder = opuslib.Encoder(sample_rate, 1, application)
        self._decoder = opuslib.Decoder(sample_rate, 1)

    def encode(self, frame: Frame) -> bytes:
        pcm = np.ascontiguousarray(frame, dtype=np.int16)
        return bytes(self._encoder.encode(pcm.tobytes(), pcm.shape[0]))

    def decode(self, payload: bytes) -> Frame:
        pcm = self._decoder.decode(bytes(payload), self.frame_samples * 6)  # room for up to 120 ms
        return np.frombuffer(pcm, dtype=np.int16).copy()


# --- registry --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """What SDP needs to know about a codec, and how to make an instance of it for one stream.

    ``payload_type`` is the static RFC 3551 number, or None for codecs that need a dynamic one.
    ``sdp_channels`` is the rtpmap encoding parameter (Opus always says 2 even for mono, RFC 7587 §7).
    """

    name: str
    clock_rate: int
    sample_rate: int
    payload_type: int | None
    factory: Callable[[], Codec] | None = field(default=None, compare=False)
    unavailable_reason: str = ""
    sdp_channels: int = 1

    @property
    def available(self) -> bool:
        return self.factory is not None

    @property
    def key(self) -> tuple[str, int]:
        return (self.name.upper(), self.clock_rate)

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` encoding part, e.g. ``PCMU/8000`` or ``opus/48000/2``."""
        tail = f"/{self.sdp_channels}" if self.sdp_channels != 1 else ""
        return f"{self.name}/{self.clock_rate}{tail}"

    def create(self) -> Codec:
        """A fresh codec instance for one stream."""
        if self.factory is None:
            raise CodecUnavailableError(f"{self.rtpmap}: {self.unavailable_reason}")
        return self.factory()


class CodecRegistry:
    """Codecs by (encoding name, clock rate); names compare case-insensitively as SDP requires."""

    def __init__(self, specs: list[CodecSpec] | None = None) -> None:
        self._specs: dict[tuple[str, int], CodecSpec] = {}
        for spec in specs or ():
            self.register(spec)

    def register(self, spec: CodecSpec) -> None:
        self._specs[spec.key] = spec

    def get(self, name: str, clock_rate: int) -> CodecSpec:
        try:
            return self._specs[(name.upper(), clock_rate)]
        except KeyError:
            raise UnknownCodecError(f"{name}/{clock_rate}") from None

    def by_static_payload_type(self, payload_type: int) -> CodecSpec:
        """The codec a static payload type (0-95) denotes when SDP has no rtpmap for it (RFC 3551 §6)."""
        for spec in self._specs.values():
            if spec.payload_type == payload_type:
                return spec
        raise UnknownCodecError(f"static payload type {payload_type}")

    def create(self, name: str, clock_rate: int) -> Codec:
        return self.get(name, clock_rate).create()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and (str(key[0]).upper(), key[1]) in self._specs

    def __iter__(self) -> Iterator[CodecSpec]:
        return iter(self._specs.values())

    def available(self) -> list[CodecSpec]:
        return [spec for spec in self._specs.values() if spec.available]


def _probe(module: str, factory: Callable[[], Codec]) -> tuple[Callable[[], Codec] | None, str]:
    """Return the factory if ``module`` imports and one instance can be built, else the reason why not."""
    try:
        factory()
    except Exception as exc:  # ImportError, or a binding whose shared library (libopus) is missing
        return None, f"{module} not usable: {exc}"
    return factory, ""


def default_registry() -> CodecRegistry:
    """A new registry with every codec we know; optional ones marked unavailable when their library is absent."""
    g722, g722_why = _probe("G722", G722Codec)
    opus, opus_why = _probe("opuslib", OpusCodec)
    return CodecRegistry(
        [
            CodecSpec("PCMU", 8000, 8000, 0, lambda: G711Codec("PCMU")),
            CodecSpec("PCMA", 8000, 8000, 8, lambda: G711Codec("PCMA")),
            CodecSpec("G722", 8000, 16000, 9, g722, g722_why),
            CodecSpec("L16", 8000, 8000, None, lambda: L16Codec(8000)),
            CodecSpec("L16", 16000, 16000, None, lambda: L16Codec(16000)),
            CodecSpec("opus", 48000, 16000, None, opus, opus_why, sdp_channels=2),
        ]
    )


# --- transcoding -----------------------------------------------------------------------------------


class _Resampler(Protocol):
    def process(self, samples: Frame) -> Frame: ...


def transcode(payload: bytes, src: Codec, dst: Codec, resampler: _Resampler | None = None) -> bytes:
    """Decode with ``src``, resample if the sample rates differ, encode with ``dst``.

    Same codec on both sides: the bytes pass through untouched (relay without decode).
    """
    if (src.name.upper(), src.clock_rate) == (dst.name.upper(), dst.clock_rate):
        return payload
    pcm = src.decode(payload)
    if src.sample_rate != dst.sample_rate:
        if resampler is None:
            raise ValueError(f"{src.sample_rate} Hz -> {dst.sample_rate} Hz needs a resampler")
        pcm = resampler.process(pcm)
    return dst.encode(pcm)


class Transcoder:
    """One direction of a bridge between two codecs, owning its codec states and, if needed, a resampler."""

    def __init__(self, src: Codec, dst: Codec) -> None:
        self.src, self.dst = src, dst
        self.passthrough = (src.name.upper(), src.clock_rate) == (dst.name.upper(), dst.clock_rate)
        self._resampler: _Resampler | None = None
        if not self.passthrough and src.sample_rate != dst.sample_rate:
            from voxswitch.media.resample import FrameResampler

            self._resampler = FrameResampler(src.sample_rate, dst.sample_rate)

    def __call__(self, payload: bytes) -> bytes:
        return transcode(payload, self.src, self.dst, self._resampler)
