"""A connection's voice input: its segments, and the server's own turn detection.

`start_speaking` opens a `VoiceSegment`; each `speaking_part` is decoded, heard by the VAD and
fed to the recogniser as it arrives; `end_speaking` hands the segment to the session, which
makes it a turn (or, on a Realtime socket without automatic replies, an input waiting for
`response.create`). With turn detection (`vad=server`, or Realtime's `server_vad`) audio may
come at any time: a segment opens when the VAD hears speech and ends after `silence_ms` of
silence, and speech over a reply for `barge_in_ms` interrupts it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from live_server import events
from live_server.errors import AudioError, ErrorCode, ProtocolError
from live_server.providers import STT
from live_server.segment import Stamp
from live_server.vad import Event, ScorerPool
from live_server.voice import VoiceSegment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnDetection:
    """The server finds where turns start and end in the audio."""

    sample_rate: int
    silence_ms: int
    barge_in_ms: int


class Listener(Protocol):
    """What the voice input asks of the session."""

    def segment_ended(self, voice: VoiceSegment) -> None:
        """The segment is over and holds audio: it becomes the user's input."""
        ...

    def bot_talking(self, now: float) -> bool:
        """Whether a reply streams, or its audio likely still plays on the client."""
        ...

    def barge_in(self) -> None:
        """The user talks over the bot."""
        ...

    def tell(self, event: events.Event) -> None: ...


class VoiceInput:
    def __init__(
        self,
        *,
        stt: STT | None,
        vad: ScorerPool | None,
        max_seconds: float,
        listener: Listener,
        detection: TurnDetection | None = None,
        implicit_rate: int | None = None,
    ) -> None:
        self._stt_engine = stt
        self._vad = vad
        self._max_seconds = max_seconds
        self._listener = listener
        self.detection = detection
        # Audio with no segment open starts one at this rate (Realtime's input buffer).
        self.implicit_rate = implicit_rate
        self.voice: VoiceSegment | None = None
        # A segment already answered (dropped for its length, or ended by the server's turn
        # detection): its `end_speaking` is expected and needs no reply.
        self._dropped_stamp: object = None
        self._segments = 0  # segments opened by the server
        self.received_ms = 0  # audio taken so far, for the Realtime events' offsets

    def stt(self) -> STT:
        if self._stt_engine is None:
            raise ProtocolError(
                "speech recognition is off on this server (LIVE_STT=none): send text, "
                "or start the server with LIVE_STT=whisper or LIVE_STT=openai",
                code=ErrorCode.UNSUPPORTED,
            )
        return self._stt_engine

    def start(self, stamp: object, sample_rate: int) -> None:
        stt = self.stt()
        if stamp is None:
            raise AudioError('start_speaking needs a "stamp" (end_speaking must repeat it)')
        assert isinstance(stamp, str | int | float)
        # A new segment replaces one never ended: the client has started over.
        self.drop()
        self._dropped_stamp = None
        self._open(stt, stamp, sample_rate, listening=False)

    def _open(self, stt: STT, stamp: Stamp, sample_rate: int, *, listening: bool) -> VoiceSegment:
        assert self._vad is not None
        self.voice = VoiceSegment(
            stamp,
            sample_rate=sample_rate,
            stt=stt,
            scorers=self._vad,
            max_seconds=self._max_seconds,
            on_partial=lambda text: self._listener.tell(events.PartialTranscript(text)),
            listening=listening,
        )
        return self.voice

    def add(self, data: str) -> None:
        stt = self.stt()
        voice = self.voice
        detection = self.detection
        if voice is None:
            if detection is not None:  # the server listens for the next turn
                voice = self._open(stt, self._next_stamp(), detection.sample_rate, listening=True)
            elif self.implicit_rate is not None:
                voice = self._open(stt, self._next_stamp(), self.implicit_rate, listening=False)
            elif self._dropped_stamp is not None:
                return  # the rest of a segment already refused for its length
            else:
                raise AudioError("speaking_part outside a segment: send start_speaking first")
        before = voice.samples
        try:
            found = voice.add(data)
        except ProtocolError as exc:
            if exc.code is ErrorCode.LIMIT_EXCEEDED:  # drop it now, and what follows until its end
                self._dropped_stamp = None if detection is not None else voice.stamp
                self.drop()
            raise
        self.received_ms += (voice.samples - before) * 1000 // voice.segment.sample_rate
        if detection is not None:
            self._detect(voice, found, detection)

    def _next_stamp(self) -> str:
        self._segments += 1
        return f"vad-{self._segments}"

    def end(self, stamp: object) -> None:
        self.stt()
        voice = self.voice
        # A segment already answered (LIMIT_EXCEEDED, or ended by the server's turn detection,
        # which may have opened the next one since) needs no reply to its end.
        answered = self._dropped_stamp is not None and stamp == self._dropped_stamp
        if answered and (voice is None or self.detection is not None):
            self._dropped_stamp = None
            return
        if voice is None:
            raise AudioError("end_speaking without start_speaking")
        if stamp is None or stamp != voice.stamp:
            raise AudioError(
                f"end_speaking stamp {stamp!r} does not match start_speaking stamp {voice.stamp!r}"
            )
        self.commit(empty="the segment holds no audio: send speaking_part frames")

    def commit(self, *, empty: str = "the input audio buffer is empty") -> None:
        """End the open segment, whatever its stamp: it becomes the user's input."""
        voice = self.voice
        if voice is None:
            raise AudioError(empty)
        if voice.samples == 0:
            self.drop()
            raise AudioError(empty)
        self.voice = None
        self._listener.segment_ended(voice)

    def drop(self) -> None:
        if self.voice is not None:
            self.voice.cancel()
            self.voice = None

    def _detect(self, voice: VoiceSegment, found: list[Event], detection: TurnDetection) -> None:
        activity = voice.activity
        if Event.SPEECH_STARTED in found and not voice.announced:
            voice.announced = True
            self._listener.tell(events.SpeechStarted(self.received_ms))
        if activity.speaking and not voice.barged_in:
            if activity.speech_run_ms >= detection.barge_in_ms:
                voice.barged_in = True
                self._listener.barge_in()
            return
        if not activity.speech_seen or activity.silence_ms < detection.silence_ms:
            return
        self._listener.tell(events.SpeechStopped(self.received_ms))
        if not voice.opened_by_server:
            self._dropped_stamp = voice.stamp  # its end_speaking, if it comes, is answered
        if self._listener.bot_talking(time.perf_counter()):
            # Too short to stop the bot (a cough, a "mhm"): not a turn of its own.
            self.drop()
            return
        self.voice = None
        self._listener.segment_ended(voice)
