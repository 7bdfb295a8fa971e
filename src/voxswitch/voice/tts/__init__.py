"""Text to speech: engines behind one small protocol, an on-disk phrase cache, and a factory.

espeak-ng runs in process and needs no network; Google, Azure and Amazon Polly are HTTP clients.
All of them stream 20 ms int16 mono frames at the engine's `sample_rate`.
"""

from voxswitch.voice.tts.base import FRAME_MS, Framer, TtsEngine, TtsError, Voice, frame_samples
from voxswitch.voice.tts.cache import CachedEngine, TtsCache
from voxswitch.voice.tts.cloud import AzureTtsEngine, GoogleTtsEngine, PollyTtsEngine
from voxswitch.voice.tts.espeak import EspeakEngine
from voxswitch.voice.tts.factory import SERVICES, TtsConfig, create_engine
from voxswitch.voice.tts.resample import Resampler, resample
from voxswitch.voice.tts.sigv4 import AwsCredentials

__all__ = [
    "FRAME_MS",
    "SERVICES",
    "AwsCredentials",
    "AzureTtsEngine",
    "CachedEngine",
    "EspeakEngine",
    "Framer",
    "GoogleTtsEngine",
    "PollyTtsEngine",
    "Resampler",
    "TtsCache",
    "TtsConfig",
    "TtsEngine",
    "TtsError",
    "Voice",
    "create_engine",
    "frame_samples",
    "resample",
]
