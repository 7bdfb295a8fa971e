"""Generated audio sources, as 20 ms engine frames: beep, ringback, and default music on hold.

All are made with NumPy once per call of the generator (no per-sample Python loop) and stream
forever unless they are finite by nature (a beep). Music on hold is a soft, slowly changing chord
pattern so a held caller hears that the line is alive without an audio file being shipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from voxswitch.media.frames import Frame

RATE = 8000
FRAME = 160


def tone(freqs: tuple[float, ...], seconds: float, level: float = 0.25, fade: float = 0.01) -> Frame:
    """A sum of sines at `level` of full scale, with short fades so it starts and stops without clicks."""
    t = np.arange(int(RATE * seconds)) / RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / max(1, len(freqs))
    n = max(1, int(RATE * fade))
    envelope = np.ones_like(t)
    envelope[:n] = np.linspace(0, 1, n)
    envelope[-n:] = np.linspace(1, 0, n)
    return (np.asarray(wave) * envelope * level * 32767).astype(np.int16)


def beep(hz: float = 1000.0, seconds: float = 0.25) -> Frame:
    return tone((hz,), seconds)


def ringback(region: str = "us") -> Frame:
    """One cadence of ringback: North America 440+480 Hz 2 s on 4 s off (ITU-T E.180), Europe 425 Hz 1 s on 4 s off."""
    if region == "eu":
        on, off = tone((425.0,), 1.0, 0.2), 4.0
    else:
        on, off = tone((440.0, 480.0), 2.0, 0.2), 4.0
    return np.concatenate((on, np.zeros(int(RATE * off), dtype=np.int16)))


def hold_music() -> Frame:
    """About 16 s of gentle arpeggios over four chords; loops seamlessly (it starts and ends quiet)."""
    chords = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7))
    notes = []
    for chord in chords:
        for _ in range(2):
            for f in (*chord, chord[1]):
                notes.append(tone((f, f * 2), 0.5, 0.12, fade=0.08))
    return np.concatenate(notes)


async def frames_of(samples: Frame, loop: bool = False) -> AsyncIterator[Frame]:
    """Cut samples into frames (the last padded with silence); forever when `loop`."""
    while True:
        for start in range(0, len(samples), FRAME):
            frame = samples[start : start + FRAME]
            if len(frame) < FRAME:
                frame = np.pad(frame, (0, FRAME - len(frame)))
            yield frame.astype(np.int16, copy=False)
        if not loop:
            return
