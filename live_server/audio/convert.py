"""Audio conversions on in-memory buffers: PCM to WAV, any supported file to PCM."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile

PCM = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono 16-bit PCM samples with their rate."""

    samples: PCM
    sample_rate: int

    @property
    def duration_ms(self) -> int:
        return round(1000 * len(self.samples) / self.sample_rate)

    def to_wav(self) -> bytes:
        return pcm_to_wav(self.samples, self.sample_rate)


def pcm_to_wav(samples: PCM, sample_rate: int) -> bytes:
    """A complete, self-contained WAV file (RIFF, PCM 16-bit, mono), built in memory: the
    canonical 44-byte header, then the little-endian samples."""
    data = samples.astype("<i2", copy=False).tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE",
        b"fmt ", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16,  # PCM, mono, 16-bit
        b"data", len(data),
    )  # fmt: skip
    return header + data


def decode(data: bytes) -> Audio:
    """Decode WAV, MP3, FLAC or OGG bytes to mono 16-bit PCM.

    Raises `ValueError` when the bytes are not audio libsndfile can read.
    """
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"undecodable audio ({len(data)} bytes): {exc}") from None
    mono = samples.mean(axis=1).astype(np.int16) if samples.shape[1] > 1 else samples[:, 0]
    return Audio(samples=np.ascontiguousarray(mono), sample_rate=int(rate))


def rms(samples: PCM) -> float:
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
