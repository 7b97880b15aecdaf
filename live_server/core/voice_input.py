"""A connection's voice input: its segments, and the server's own turn detection. No socket and
no wire format: it tells its `Listener` (the session) what happened.

`start_speaking` opens a `VoiceSegment`; each `speaking_part` is decoded, heard by the VAD and
fed to the recogniser as it arrives; `end_speaking` hands the segment to the session, which
makes it a turn (or, on a Realtime socket without automatic replies, an input waiting for
`response.create`). With turn detection (`vad=server`, or Realtime's `server_vad` and
`semantic_vad`) audio may come at any time: a segment opens when the VAD hears speech, and
speech over a reply for `barge_in_ms` interrupts it. At each pause the recogniser's guess is
judged (`turn_end`): the silence that ends the turn is `silence_ms`, or, with `bounds`, what the
words so far need; a guess that looks finished starts a speculative reply
(`Listener.speculate`) once the silence is within `turn_end.SPECULATE_LEAD_MS` of what its words
need, which the session holds back until the turn ends and drops if the speaker goes on. A
speaker heard again soon after the server ended their turn was cut off: what that pause teaches
(`turn_end.Patience`) lengthens the bounds for the rest of the connection; a long pause inside a
turn that the speaker went on after lengthens them for the rest of that turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from live_server.audio.segment import Stamp
from live_server.audio.vad import Event, ScorerPool
from live_server.core import events
from live_server.core.turn_end import (
    BOUNDS,
    MAX_PATIENCE_MS,
    Bounds,
    Eagerness,
    Patience,
    Verdict,
    bare,
    end_probability,
    judge,
    needs_model,
    scoring_prompt,
)
from live_server.core.voice_segment import VoiceSegment
from live_server.engines import STT, EndModel
from live_server.errors import AudioError, ErrorCode, LiveError, LLMError, ProtocolError
from live_server.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnDetection:
    """The server finds where turns start and end in the audio."""

    sample_rate: int
    silence_ms: int  # the silence that ends a turn without `bounds`
    barge_in_ms: int
    # From how finished the words read, between these (`turn_end`); None: silence alone.
    bounds: Bounds | None = None
    speculate: bool = False  # start replies at pauses whose words look finished
    # The most a speaker who was cut off is given after finished words (`turn_end.Patience`).
    patience_ms: int = MAX_PATIENCE_MS

    def speculates(self, verdict: Verdict, silence_ms: int) -> bool:
        """Whether a reply to the pause's words starts, `silence_ms` into it."""
        return self.speculate and verdict.speculate_now(silence_ms)

    @classmethod
    def configured(
        cls,
        settings: Settings,
        sample_rate: int,
        *,
        eagerness: Eagerness | None = None,
        silence_ms: int | None = None,
        barge_in: bool = True,
    ) -> TurnDetection:
        """The detection a socket asks for. By default, the server's policy
        (`LIVE_TURN_POLICY`, `LIVE_TURN_EAGERNESS`); `silence_ms`, silence alone (Realtime's
        `server_vad`); `eagerness`, from the words at that eagerness (`semantic_vad`)."""
        bounds: Bounds | None = None
        if silence_ms is None:
            if eagerness is None and settings.turn_policy != "silence":
                eagerness = Eagerness(settings.turn_eagerness)
            if eagerness is Eagerness.AUTO:
                bounds = Bounds(settings.turn_complete_ms, settings.turn_unfinished_ms)
            elif eagerness is not None:
                bounds = BOUNDS[eagerness]
        return cls(
            sample_rate=sample_rate,
            silence_ms=settings.vad_silence_ms if silence_ms is None else silence_ms,
            barge_in_ms=settings.barge_in_ms if barge_in else 10**9,
            bounds=bounds,
            speculate=settings.speculate,
            patience_ms=settings.turn_patience_ms,
        )


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

    def speculate(self, text: str) -> None:
        """The speaker paused after words that look finished: a reply to them may start, held
        back until the turn ends."""
        ...

    def drop_speculation(self) -> None:
        """The speaker went on: a reply started at the pause is dropped."""
        ...

    def read_ahead(self, text: str) -> None:
        """The words so far, while the speaker goes on (a partial transcript): the model that
        will answer may read them ahead."""
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
        end_model: EndModel | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._stt_engine = stt
        # Seconds, as `time.perf_counter` counts them (the session's replies do): when the
        # speaker is heard again after a turn (`_pause_after_end`), whether the bot talks.
        self.clock = clock
        self._end_model = end_model
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
        # The current pause of the open segment: what its guess says, once judged, and
        # whether a reply to it was started (`TurnDetection.speculates`).
        self._verdict: Verdict | None = None
        self._judging: asyncio.Task[None] | None = None
        self._speculating = False
        # How long this speaker pauses without having finished (`turn_end.Patience`), and
        # where the silence that ended the server's last turn began, in the audio
        # (`received_ms`) and on the clock, until the speaker is heard again.
        self._patience = Patience()
        self._ended_silence_at: tuple[int, float] | None = None
        # What the open segment's own pauses taught: a speaker who paused long inside the turn
        # and went on is given as long at its end (`Patience.within`).
        self._pace = Patience()

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
        self._pace = Patience()
        self.voice = VoiceSegment(
            stamp,
            sample_rate=sample_rate,
            stt=stt,
            scorers=self._vad,
            max_seconds=self._max_seconds,
            on_partial=self._partial,
            listening=listening,
        )
        return self.voice

    def _partial(self, text: str) -> None:
        """The words so far: told to the client, and read ahead by the model that will answer
        (`Turns.read_ahead`), unless a pause is being judged. Its verdict comes first, since it
        says when the turn ends: with the embedded model judging and answering, the two at
        once slowed each other, and the verdict came later (`_judge` reads them after it)."""
        self._listener.tell(events.PartialTranscript(text))
        if self._judging is None:
            self._listener.read_ahead(text)

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
        self._forget_pause(keep_speculation=True)
        if voice.samples == 0:
            self.drop()
            raise AudioError(empty)
        self.voice = None
        self._listener.segment_ended(voice)

    def drop(self) -> None:
        self._forget_pause()
        if self.voice is not None:
            self.voice.cancel()
            self.voice = None

    def _detect(self, voice: VoiceSegment, found: list[Event], detection: TurnDetection) -> None:
        activity = voice.activity
        for event in found:
            if event is Event.PAUSED:
                self._pause(voice, detection)
            elif self._verdict is not None or self._judging is not None:
                self._forget_pause()  # the speaker went on after a pause
        if Event.SPEECH_STARTED in found and not voice.announced:
            voice.announced = True
            self._listener.tell(events.SpeechStarted(self.received_ms))
            if self._ended_silence_at is not None:  # was the last turn ended too soon?
                pause_ms = self._pause_after_end(self._ended_silence_at)
                self._patience, self._ended_silence_at = self._patience.after(pause_ms), None
        elif Event.SPEECH_STARTED in found and detection.bounds is not None:
            # On after a pause inside the turn: as long a pause at its end may not be its end.
            self._pace = self._pace.within(activity.pause_before_ms, detection.bounds)
        if activity.speaking and not voice.barged_in:
            if activity.speech_run_ms >= detection.barge_in_ms:
                voice.barged_in = True
                self._listener.barge_in()
            return
        self._maybe_end(voice, detection)

    def _maybe_end(self, voice: VoiceSegment, detection: TurnDetection) -> None:
        """End the turn if the silence since the speech is what its words need. Called as
        audio arrives, and when a pause's verdict comes in (a client streaming faster than
        real time may have sent all its silence by then)."""
        activity = voice.activity
        if activity.speaking or not activity.speech_seen:
            return
        verdict = self._verdict
        if (
            verdict is not None
            and not self._speculating
            and detection.speculates(verdict, activity.silence_ms)
        ):
            self._speculating = True
            self._listener.speculate(verdict.text)
        bounds = self._bounds(detection)
        if bounds is None:
            needed = detection.silence_ms
        elif verdict is not None:
            needed = verdict.silence_ms
        else:  # the pause's words are still being recognised or judged
            needed = bounds.unfinished_ms
        silence = activity.silence_ms
        if silence < needed:
            return
        # `speech_stopped` marks where the silence began, though it is sent when the turn ends.
        self._listener.tell(events.SpeechStopped(self.received_ms - silence))
        voice.turn_end = {"end_of_turn_ms": silence}
        if verdict is not None and verdict.text:
            voice.turn_end["end_of_turn_p"] = round(verdict.p_end, 4)
        if bounds is not None and detection.bounds != bounds:
            voice.turn_end["end_of_turn_patience_ms"] = bounds.complete_ms
        self._forget_pause(keep_speculation=True)
        if not voice.opened_by_server:
            self._dropped_stamp = voice.stamp  # its end_speaking, if it comes, is answered
        if self._listener.bot_talking(self.clock()):
            # Too short to stop the bot (a cough, a "mhm"): not a turn of its own.
            self._listener.drop_speculation()
            self.drop()
            return
        self.voice = None
        self._ended_silence_at = (self.received_ms - silence, self.clock() - silence / 1000)
        self._listener.segment_ended(voice)

    def _pause_after_end(self, ended_silence_at: tuple[int, float]) -> int:
        """How long (ms) the speaker was silent after the silence that ended their last turn
        began: in the audio, or on the clock when longer. A client may send no audio while the
        bot's reply plays (a device without echo cancellation, one that hears the reply out
        before the next turn): its next turn starts a moment later in the audio, though the
        speaker heard a whole reply first and was not cut off. One that streams faster than
        real time is told by its audio."""
        audio_ms, clock = ended_silence_at
        return max(self.received_ms - audio_ms, round((self.clock() - clock) * 1000))

    def _bounds(self, detection: TurnDetection) -> Bounds | None:
        """The detection's bounds, with what this speaker's pauses have taught (`Patience`):
        their cut-offs on this connection, and their pauses inside this turn."""
        if detection.bounds is None:
            return None
        patience = Patience(max(self._patience.floor_ms, self._pace.floor_ms))
        return patience.bounds(detection.bounds, detection.patience_ms)

    # --- pauses ----------------------------------------------------------------------------

    def _pause(self, voice: VoiceSegment, detection: TurnDetection) -> None:
        """The speaker paused: judge the guess at what they said so far, in the background."""
        self._forget_pause()
        guess = voice.pause_guess()
        # Silence alone decides: for a recogniser that does not guess, and for silence-only
        # detection that starts no reply early (nothing would use the verdict).
        if guess is None or (detection.bounds is None and not detection.speculate):
            self._verdict = Verdict("", 0.0, detection.silence_ms)
            return
        self._judging = asyncio.create_task(self._judge(voice, guess, detection), name="live-pause")

    async def _judge(
        self,
        voice: VoiceSegment,
        guess: asyncio.Future[str],
        detection: TurnDetection,
    ) -> None:
        began = time.perf_counter()
        try:
            text = await asyncio.shield(guess)
        except asyncio.CancelledError:
            raise
        except Exception:  # the final decode will report it
            text = ""
        if not bare(text):  # noise, or nothing recognised: silence alone decides
            self._judged(voice, Verdict(text, 0.0, detection.silence_ms), detection)
            return
        guessed = time.perf_counter()
        model: float | None = None
        if self._end_model is not None and needs_model(text):
            try:
                model = end_probability(await self._end_model.next_tokens(scoring_prompt(text)))
            except LLMError as exc:
                log.warning("the end of the turn is judged without the model: %s", exc)
        # Without bounds, silence alone decides: bounds that are both `silence_ms`.
        bounds = self._bounds(detection) or Bounds(detection.silence_ms, detection.silence_ms)
        verdict = judge(text, model, bounds)
        log.debug(
            "pause after %r: p_end %.3f, needs %d ms (guess %.0f ms, model %.0f ms)",
            text,
            verdict.p_end,
            verdict.silence_ms,
            1000 * (guessed - began),
            1000 * (time.perf_counter() - guessed),
        )
        if not detection.speculates(verdict, voice.activity.silence_ms):
            self._listener.read_ahead(text)  # a reply started later reads only what is new
        self._judged(voice, verdict, detection)

    def _judged(self, voice: VoiceSegment, verdict: Verdict, detection: TurnDetection) -> None:
        self._verdict, self._judging, self._speculating = verdict, None, False
        if self.voice is not voice:
            return
        try:
            self._maybe_end(voice, detection)
        except LiveError as exc:  # no client frame to answer: tell the client all the same
            self._listener.tell(events.Failed(exc.code, exc.message))

    def _forget_pause(self, *, keep_speculation: bool = False) -> None:
        """The pause is over: the speaker went on, or the segment ended (its speculative
        reply kept, with `keep_speculation`, for the turn to take over)."""
        if self._judging is not None:
            self._judging.cancel()
            self._judging = None
        self._verdict, self._speculating = None, False
        if not keep_speculation:
            self._listener.drop_speculation()
