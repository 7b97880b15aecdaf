"""Streaming sample-rate conversion for 16-bit mono PCM, chunk by chunk, with no I/O.

Microphone audio arrives in small frames at the client's rate (often 48 kHz); recognisers want
16 kHz. `Resampler.feed` converts each frame as it arrives and `flush` emits the tail, and the
result is the same as converting the whole signal at once (chunk boundaries leave no seams).

Method: when lowering the rate, a windowed-sinc low-pass filter first removes what the new rate
cannot carry (no aliasing); then linear interpolation reads the signal at the new sample times.
Output sample n sits at input position n * src / dst, computed from integers so that long
streams do not drift.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PCM = npt.NDArray[np.int16]
_Floats = npt.NDArray[np.float64]

_HALF_TAPS = 16  # per side, in units of the output sample period


def _lowpass(src: int, dst: int) -> _Floats:
    """A Hann-windowed sinc with its cutoff a little below the output's Nyquist frequency."""
    ratio = src / dst
    half = int(np.ceil(_HALF_TAPS * ratio))
    cutoff = 0.45 / ratio  # cycles per input sample
    n = np.arange(-half, half + 1, dtype=np.float64)
    taps: _Floats = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hanning(len(n))
    normalised: _Floats = taps / taps.sum()  # unity gain at DC
    return normalised


class Resampler:
    def __init__(self, src: int, dst: int) -> None:
        if src <= 0 or dst <= 0:
            raise ValueError("sample rates must be positive")
        self.src, self.dst = src, dst
        self._taps = _lowpass(src, dst) if dst < src else None
        delay = (len(self._taps) - 1) // 2 if self._taps is not None else 0
        # The filter's input history; it starts as silence, which the delay then skips.
        self._history = np.zeros(2 * delay, dtype=np.float64)
        self._skip = delay  # filtered samples still to drop: the filter's group delay
        self._filtered: _Floats = np.zeros(0)  # filtered input not yet fully used
        self._base = 0  # input index of self._filtered[0]
        self._produced = 0  # output samples emitted so far

    def feed(self, pcm: PCM) -> PCM:
        if self.src == self.dst:
            return pcm
        return self._convert(self._filter(pcm.astype(np.float64)), final=False)

    def flush(self) -> PCM:
        """Emit what the last samples still owe: the filter's tail and the final positions."""
        if self.src == self.dst:
            return np.zeros(0, dtype=np.int16)
        pad = np.zeros(len(self._history) // 2, dtype=np.float64)
        return self._convert(self._filter(pad), final=True)

    def _filter(self, x: _Floats) -> _Floats:
        if self._taps is None:
            return x
        joined = np.concatenate([self._history, x])
        out = np.convolve(joined, self._taps, mode="valid")
        self._history = joined[len(joined) - (len(self._taps) - 1) :]
        if self._skip:
            dropped = min(self._skip, len(out))
            out = out[dropped:]
            self._skip -= dropped
        return out

    def _convert(self, x: _Floats, *, final: bool) -> PCM:
        buf = np.concatenate([self._filtered, x])
        end = self._base + len(buf)  # one past the last input index we hold
        # Output n needs input positions floor(p) and floor(p) + 1, with p = n * src / dst;
        # at the end of the stream the last sample may be used alone.
        limit = end if final else end - 1
        stop = -(-limit * self.dst // self.src)  # first n whose position is >= limit
        n = np.arange(self._produced, max(stop, self._produced), dtype=np.int64)
        whole = n * self.src // self.dst - self._base
        frac = (n * self.src % self.dst) / self.dst
        nxt = np.minimum(whole + 1, len(buf) - 1)
        y = buf[whole] * (1 - frac) + buf[nxt] * frac if len(n) else np.zeros(0)
        self._produced += len(n)
        keep_from = self._produced * self.src // self.dst - self._base
        keep_from = max(0, min(keep_from, len(buf)))
        self._filtered = buf[keep_from:]
        self._base += keep_from
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
