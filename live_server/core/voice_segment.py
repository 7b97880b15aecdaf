"""One segment of a connection's voice: audio checked and converted, followed by the server's
VAD, and recognised speculatively.

The VAD hears every sample the recogniser gets. When the speaker pauses, the recogniser is asked
for a guess at once (the pause may be the end), and while they speak, about once a second of new
speech (a partial transcript). At the end, a guess that covers the last speech is the
transcript: ending a segment costs no decode when the speaker paused before it ended.

A segment opened by the server's own turn detection (`listening`) starts with no speech: until
the VAD confirms some, it keeps only a short pre-roll of audio, so the silence before a turn
neither fills the recogniser nor counts towards the segment's length limit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from live_server.audio.convert import PCM
from live_server.audio.segment import Segment, Stamp
from live_server.audio.vad import SAMPLE_RATE, Event, Scorer, ScorerPool, VoiceActivity
from live_server.engines import STT, Recognition
from live_server.errors import ErrorCode, ProtocolError

PARTIAL_EVERY = SAMPLE_RATE  # samples of new speech between partial transcripts
PREROLL = SAMPLE_RATE * 3 // 10  # audio kept from before the speech starts: 300 ms


class VoiceSegment:
    def __init__(
        self,
        stamp: Stamp,
        *,
        sample_rate: int,
        stt: STT,
        scorers: ScorerPool,
        max_seconds: float,
        on_partial: Callable[[str], None] | None = None,
        listening: bool = False,
    ) -> None:
        if stt.sample_rate != SAMPLE_RATE:
            raise ValueError("the VAD needs the recogniser's audio at 16 kHz")
        self.stamp = stamp
        self.opened_by_server = listening
        # Server turn detection's marks: speech_started was sent; the speech stopped the bot.
        self.announced = False
        self.barged_in = False
        # How the server's turn detection ended it: its figures for the turn's metrics.
        self.turn_end: dict[str, float] = {}
        self._stt = stt
        self._on_partial = on_partial
        self._max_samples = int(max_seconds * SAMPLE_RATE)
        self.segment = Segment(
            stamp,
            sample_rate=sample_rate,
            target_rate=SAMPLE_RATE,
            max_seconds=None if listening else max_seconds,
        )
        self._scorers = scorers
        self._scorer: Scorer | None = scorers.take()
        self.activity = VoiceActivity(self._scorer)
        self.recognition: Recognition | None = None
        self._preroll: deque[PCM] = deque()
        self._offset = 0  # VAD sample at which the recognition's audio starts
        self._fed = 0  # samples the recognition has
        self._speech_at_guess = 0
        if not listening:
            self._start_recognition()

    @property
    def samples(self) -> int:
        return self.segment.samples

    @property
    def speech_seen(self) -> bool:
        return self.activity.speech_seen

    def add(self, data: str) -> list[Event]:
        """Take one `speaking_part` payload. Raises `AudioError` for a bad payload and
        `ProtocolError` (`LIMIT_EXCEEDED`) for a segment that grew too long."""
        return self._take(self.segment.add(data))

    def close(self) -> None:
        """No more audio: what the rate converter held back goes to the recogniser."""
        self._take(self.segment.close())

    async def transcript(self) -> str:
        """The recognised text: "" when the VAD heard no speech, without asking the recogniser."""
        recognition = self.recognition
        if recognition is None or not self.activity.speech_seen:
            self.cancel()
            return ""
        self._release()
        return await recognition.finish(speech_end=self.activity.last_speech_end - self._offset)

    def pause_guess(self) -> asyncio.Future[str] | None:
        """The recogniser's guess at the words up to the last speech heard (asked for at the
        pause), or None when it makes none."""
        if self.recognition is None:
            return None
        return self.recognition.guessed(self.activity.last_speech_end - self._offset)

    def cancel(self) -> None:
        if self.recognition is not None:
            self.recognition.cancel()
        self._release()

    def _release(self) -> None:
        if self._scorer is not None:
            self._scorers.give(self._scorer)
            self._scorer = None

    def _start_recognition(self) -> None:
        self.recognition = self._stt.start(on_partial=self._on_partial)
        self._offset = self.activity.received - sum(len(p) for p in self._preroll)
        for pcm in self._preroll:
            self._feed(pcm)
        self._preroll.clear()

    def _feed(self, pcm: PCM) -> None:
        assert self.recognition is not None
        if self._fed + len(pcm) > self._max_samples:
            raise ProtocolError(
                f"the segment is longer than the {self._max_samples / SAMPLE_RATE:g} s limit "
                "and was dropped",
                code=ErrorCode.LIMIT_EXCEEDED,
            )
        self._fed += len(pcm)
        self.recognition.feed(pcm)

    def _take(self, pcm: PCM) -> list[Event]:
        if self._scorer is None or len(pcm) == 0:
            return []
        events = self.activity.feed(pcm)
        if self.recognition is None:
            self._preroll.append(pcm)
            while sum(len(p) for p in self._preroll) - len(self._preroll[0]) >= PREROLL:
                self._preroll.popleft()
            if Event.SPEECH_STARTED in events:
                self._start_recognition()
            return events
        self._feed(pcm)
        if Event.PAUSED in events:
            self._guess(urgent=True)
        elif (
            self.activity.speaking
            and self.activity.speech_samples - self._speech_at_guess >= PARTIAL_EVERY
        ):
            self._guess(urgent=False)
        return events

    def _guess(self, *, urgent: bool) -> None:
        assert self.recognition is not None
        self._speech_at_guess = self.activity.speech_samples
        self.recognition.guess(urgent=urgent)
