"""Recordings of real people talking, for every test of recognition.

They are read from `../shared/data/speech/` beside the repository (never copied into it).
Synthetic speech, our own TTS read back, is far easier to recognise than a person in a room and
hides how a recogniser really does; it is used here only where a test needs a voice of its own
(Piper read back by Whisper).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"


@dataclass(frozen=True)
class Recording:
    file: str
    text: str


JFK = Recording(
    "jfk.flac",
    "And so my fellow Americans, ask not what your country can do for you, ask what you can "
    "do for your country.",
)
STARS = Recording("new-home-in-the-stars-16k.wav", "We must find a new home in the stars.")
RECORDINGS = [JFK, STARS]


@cache
def load(recording: Recording, rate: int | None = 16000) -> tuple[np.ndarray[Any, Any], int]:
    """The recording as mono 16-bit PCM at `rate` (None: its own rate)."""
    samples, native = soundfile.read(SPEECH_DIR / recording.file, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate is not None and rate != native:
        t_out = np.arange(int(len(mono) * rate / native)) / rate
        mono = np.interp(t_out, np.arange(len(mono)) / native, mono)
    else:
        rate = native
    pcm = np.clip(mono * 32768.0, -32768, 32767).astype(np.int16)
    return pcm, rate


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(said: str, heard: str) -> float:
    """Word-level edit distance over the number of words said."""
    ref, hyp = words(said), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def noise(seconds: float, level: int = 1500, seed: int = 1) -> np.ndarray[Any, Any]:
    """White noise at 16 kHz: a fan, a hiss; no speech in it."""
    rng = np.random.default_rng(seed)
    return rng.integers(-level, level, int(seconds * 16000), dtype=np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray[Any, Any]:
    return np.zeros(int(seconds * rate), dtype=np.int16)
