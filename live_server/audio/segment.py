"""One spoken segment, from `start_speaking` to `end_speaking`: pure audio assembly, no I/O.

Each `speaking_part` is checked (base64, whole 16-bit samples), converted to the recogniser's
rate and handed back so that it can be recognised at once; the segment keeps only counters,
never the audio, which the recogniser holds if it needs it.
"""

from __future__ import annotations

import binascii
import time
from base64 import b64decode

import numpy as np

from live_server.audio.convert import PCM
from live_server.audio.resample import Resampler
from live_server.errors import AudioError, ErrorCode, ProtocolError

Stamp = str | int | float


class Segment:
    def __init__(
        self, stamp: Stamp, *, sample_rate: int, target_rate: int, max_seconds: float | None
    ) -> None:
        self.stamp = stamp
        self.sample_rate = sample_rate
        # None: the caller bounds the segment itself.
        self.max_samples = None if max_seconds is None else int(max_seconds * sample_rate)
        self.samples = 0  # received, at the client's rate
        self.assemble_time = 0.0  # seconds spent decoding and converting this segment's audio
        self._resampler = Resampler(sample_rate, target_rate)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def add(self, data: str) -> PCM:
        """Decode one `speaking_part` payload; returns its samples at the target rate.

        Raises `AudioError` for a payload that is not whole 16-bit PCM (the segment is still
        usable), and `ProtocolError` with `LIMIT_EXCEEDED` once the segment is too long.
        """
        t0 = time.perf_counter()
        try:
            raw = b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise AudioError("speaking_part data is not valid base64") from None
        if len(raw) % 2:
            raise AudioError(
                f"speaking_part holds {len(raw)} bytes: 16-bit PCM needs an even number"
            )
        pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
        if self.max_samples is not None and self.samples + len(pcm) > self.max_samples:
            limit = self.max_samples / self.sample_rate
            raise ProtocolError(
                f"the segment is longer than the {limit:g} s limit and was dropped",
                code=ErrorCode.LIMIT_EXCEEDED,
            )
        self.samples += len(pcm)
        out = self._resampler.feed(pcm)
        self.assemble_time += time.perf_counter() - t0
        return out

    def close(self) -> PCM:
        """The last converted samples, held back by the rate converter until now."""
        t0 = time.perf_counter()
        tail = self._resampler.flush()
        self.assemble_time += time.perf_counter() - t0
        return tail
