"""One live connection: a reader loop, one writer task, and each turn as its own task.

The reader never waits for a turn, so `interrupt` is read while a reply streams. Interrupting
marks the turn (its queued frames are dropped from then on), sends `stop_play` at once, cancels
the turn task (which closes the provider streams), and then, once `stop_play` has reached the
socket and the turn's task is done, records what was heard and sends `end`. A turn asked for
while an interrupted one is still finishing is accepted and starts after its `end`.

Voice input: `start_speaking` opens a `VoiceSegment`; each `speaking_part` is decoded, heard by
the VAD and fed to the recogniser as it arrives; `end_speaking` starts a turn whose first step
is to finish the recognition. On a `vad=server` socket the server detects turns itself: audio
may come at any time, a segment opens when the VAD hears speech and ends after
`LIVE_VAD_SILENCE_MS` of silence, and speech over a reply for `LIVE_BARGE_IN_MS` interrupts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from live_server import protocol
from live_server.chat import ChatChannel, ChatContext, ChatRequestError
from live_server.conversation import Conversation, ConversationFeed, Exchange
from live_server.errors import AudioError, CloseCode, ErrorCode, LiveError, ProtocolError, STTError
from live_server.hub import ChatHub
from live_server.outbox import Outbox, OutboxOverflow, Outgoing
from live_server.providers import LLM, STT, TTS
from live_server.segment import Stamp
from live_server.settings import Settings
from live_server.storage import SavedTurn, Store, TurnRecord
from live_server.turn import InputType, Turn, TurnRunner
from live_server.vad import Event, ScorerPool
from live_server.voice import VoiceSegment

log = logging.getLogger(__name__)
# Control frames (errors, answers to requests) that may wait for the client before the reader
# takes its next frame.
CONTROL_BACKLOG = 16


class Phase(Enum):
    IDLE = "idle"
    RESPONDING = "responding"
    CLOSED = "closed"


_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.RESPONDING, Phase.CLOSED}),
    Phase.RESPONDING: frozenset({Phase.IDLE, Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}


@dataclass(frozen=True)
class Engines:
    llm: LLM
    tts: TTS | None
    stt: STT | None = None
    vad: ScorerPool | None = None  # with `stt`: the server's VAD models


@dataclass(frozen=True)
class TurnDetection:
    """A `vad=server` socket's turn detection: the server finds where turns start and end."""

    sample_rate: int
    silence_ms: int
    barge_in_ms: int


@dataclass(frozen=True)
class LiveConversation:
    """The stored conversation a connection's live turns continue and are saved to."""

    id: str
    resumed: bool
    conversation: Conversation


class SlowClient(Exception):
    """The client stopped reading; the connection is closed rather than buffered without end."""


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        username: str,
        settings: Settings,
        engines: Engines,
        store: Store,
        hub: ChatHub,
        feed: ConversationFeed,
        live: LiveConversation | None,
        channel: protocol.ChannelType = "live",
        force_channel: bool = False,
        detection: TurnDetection | None = None,
    ) -> None:
        self.ws = websocket
        self.username = username
        self.settings = settings
        self.engines = engines
        self.store = store
        self.feed = feed
        self.channel = channel
        self.force_channel = force_channel
        self.phase = Phase.IDLE
        self.outbox = Outbox(settings.outbox_frames)
        self._overflow: OutboxOverflow | None = None
        # A socket forced to chat mode has no live conversation.
        self.live = live
        self.conversation = (
            live.conversation if live is not None else Conversation.configured(settings)
        )
        self.chat = ChatChannel(
            ChatContext(settings, engines.llm, store, hub, feed),
            self,
            max_replies=settings.chat_max_replies,
        )
        self._saves: set[asyncio.Task[Any]] = set()
        self.turn: Turn | None = None
        # The last turn that ended normally with audio: the client may still be playing it.
        self._last_spoken: Turn | None = None
        self.voice: VoiceSegment | None = None
        # A segment already answered (dropped for its length, or ended by the server's turn
        # detection): its `end_speaking` is expected and needs no reply.
        self._dropped_stamp: object = None
        self.detection = detection
        self._segments = 0  # segments the server's turn detection has opened
        self._turn_ids = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Set by `end`: the close code, its reason, and a frame to send before closing.
        self._ended: asyncio.Future[tuple[CloseCode, str, protocol.Frame | None]] = (
            asyncio.get_running_loop().create_future()
        )

    # --- state -------------------------------------------------------------------------

    def _transition(self, to: Phase) -> None:
        if to not in _TRANSITIONS[self.phase]:
            raise RuntimeError(f"session cannot go from {self.phase.value} to {to.value}")
        log.debug("session %s: %s -> %s", self.username, self.phase.value, to.value)
        self.phase = to

    # --- connection life cycle -----------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or stops reading."""
        if self.live is not None:
            self.send_control(
                protocol.conversation(
                    self.live.id, resumed=self.live.resumed, messages=2 * len(self.conversation)
                )
            )
            # From now on, exchanges other connections add to it reach this copy too.
            self.feed.join(self.username, self.live.id, self.conversation)
        reader = asyncio.create_task(self._read_loop(), name="live-reader")
        writer = asyncio.create_task(self._write_loop(), name="live-writer")
        ended = self._ended
        close: tuple[CloseCode, str] | None = None
        last: protocol.Frame | None = None
        try:
            waiting: set[asyncio.Future[Any]] = {reader, writer, ended}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            error = next(
                (t.exception() for t in done if t is not ended and t.exception() is not None),
                None,
            )
            if ended in done:
                code, reason, last = ended.result()
                close = (code, reason)
            elif isinstance(error, SlowClient | OutboxOverflow):
                log.warning(
                    "Client is not reading; closing %s's connection: %s", self.username, error
                )
                close = (CloseCode.TRY_AGAIN_LATER, "Client is not reading")
            elif error is not None:
                log.error("session %s failed", self.username, exc_info=error)
                close = (CloseCode.INTERNAL_ERROR, "Internal error")
        finally:
            self._transition(Phase.CLOSED)
            self._drop_segment()
            await self._cancel_all(reader, writer)
            self.outbox.close()  # nothing more will be written; producers must not wait
            if self.live is not None:
                self.feed.leave(self.username, self.live.id, self.conversation)
            self._save_cut_off()
            await self.chat.aclose()
            # Turns already over are saved even though the client has gone.
            if self._saves:
                await asyncio.shield(asyncio.gather(*self._saves, return_exceptions=True))
        if close is not None:  # with the turns stopped: waiting for the client costs nothing
            await self._close(*close, last=last)

    def end(self, code: CloseCode, reason: str, error: protocol.Frame | None = None) -> None:
        """End the connection from outside (its credential was revoked): `error` is sent, the
        turns stop as on a disconnect, and the socket is closed with `code`."""
        if not self._ended.done():
            self._ended.set_result((code, reason, error))

    async def _close(
        self, code: CloseCode, reason: str, *, last: protocol.Frame | None = None
    ) -> None:
        """Send the close frame. A client that stopped reading takes it only once it reads
        again: it is given as long as any frame (`LIVE_SEND_TIMEOUT_S`), so that one that was
        only away for a while learns why it was cut off; after that the connection is ended
        without it."""

        async def close() -> None:
            if last is not None:
                await self.ws.send_text(protocol.encode(last))
            await self.ws.close(code, reason)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), self.settings.send_timeout_s)

    async def _cancel_all(self, *tasks: asyncio.Task[None]) -> None:
        pending = [*tasks, *self._tasks]
        turn = self.turn
        while turn is not None:
            if turn.task is not None:
                pending.append(turn.task)
            turn = turn.after
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read_loop(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes", b"")
            try:
                frame = protocol.parse_client_frame(
                    raw,
                    max_text_chars=self.settings.max_text_chars,
                    default_ct=self.channel,
                    force_ct=self.force_channel,
                )
                pending = self._dispatch(frame)
                if pending is not None:
                    await pending
            except LiveError as exc:
                self.send_error(exc.code, exc.message)
            except OutboxOverflow:
                raise
            except Exception:  # a bug must cost one frame its answer, not the connection
                log.exception("a frame from %s could not be handled", self.username)
                self.send_error(ErrorCode.INTERNAL_ERROR, "the frame could not be handled")
            await self.outbox.control_room(CONTROL_BACKLOG)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.settings.send_timeout_s
        while True:
            await self.outbox.wait()
            if self._overflow is not None:
                raise self._overflow
            # Everything queued goes out in one wake-up. One timer per batch, pushed forward
            # for each further frame: the limit holds per frame without a new timer per frame.
            try:
                async with asyncio.timeout(limit) as deadline:
                    first = True
                    while (item := self.outbox.pop()) is not None:
                        if item.turn is not None and item.turn.interrupted:
                            continue
                        if item.gate is not None:  # the client is not slow while we wait
                            deadline.reschedule(None)
                            for text in await item.gate():
                                deadline.reschedule(loop.time() + limit)
                                await self.ws.send_text(text)
                            first = False
                        if not first:
                            deadline.reschedule(loop.time() + limit)
                        first = False
                        await self.ws.send_text(item.text)
                        if item.on_sent is not None:
                            item.on_sent()
            except TimeoutError:
                raise SlowClient(f"a frame waited over {limit:g} s to be sent") from None
            _yield_cpu()

    # --- frames --------------------------------------------------------------------------

    def send_control(
        self, frame: protocol.Frame, on_sent: Callable[[], None] | None = None
    ) -> None:
        self.outbox.put_control(Outgoing(protocol.encode(frame), on_sent=on_sent))

    def send_error(self, code: ErrorCode, message: str, *, turn_id: int | None = None) -> None:
        self.send_control(protocol.error_frame(code, message, turn_id=turn_id))

    # Chat mode's view of this connection (`hub.Subscriber`).

    async def put(self, frame: protocol.Frame) -> None:
        await self.outbox.put(Outgoing(protocol.encode(frame)))

    def offer(self, frame: protocol.Frame) -> None:
        try:
            self.outbox.put_control(Outgoing(protocol.encode(frame)))
        except OutboxOverflow as exc:
            self._overflow = exc  # the writer closes the connection

    def _dispatch(self, frame: protocol.ClientFrame) -> Awaitable[None] | None:
        """Act on a frame; what the reader must await before the next one, if anything."""
        match frame:
            case protocol.TextInput(text=text):
                self._start_turn(self._new_turn(text, "text"))
            case protocol.Interrupt(played_ms=played_ms):
                self._interrupt(played_ms)
            case protocol.StartSpeaking(stamp=stamp, sample_rate=rate):
                self._start_segment(stamp, rate)
            case protocol.SpeakingPart(data=data):
                self._add_to_segment(data)
            case protocol.EndSpeaking(stamp=stamp):
                self._end_segment(stamp)
            case protocol.ChatFrame():
                return self._dispatch_chat(frame)
        return None

    def _dispatch_chat(self, frame: protocol.ChatFrame) -> Awaitable[None] | None:
        try:
            request = protocol.parse_chat_frame(frame, max_text_chars=self.settings.max_text_chars)
            return self.chat.handle(request)
        except ChatRequestError as exc:
            self.offer(
                protocol.chat_error(
                    exc.code, exc.message, session_id=exc.session_id, message_id=exc.message_id
                )
            )
        except LiveError as exc:
            self.offer(protocol.chat_error(exc.code, exc.message))
        return None

    # --- voice input -----------------------------------------------------------------------

    def _stt(self) -> STT:
        if self.engines.stt is None:
            raise ProtocolError(
                "speech recognition is off on this server (LIVE_STT=none): send text_input, "
                "or start the server with LIVE_STT=whisper or LIVE_STT=openai",
                code=ErrorCode.UNSUPPORTED,
            )
        return self.engines.stt

    def _start_segment(self, stamp: object, sample_rate: int) -> None:
        stt = self._stt()
        if stamp is None:
            raise AudioError('start_speaking needs a "stamp" (end_speaking must repeat it)')
        assert isinstance(stamp, str | int | float)
        # A new segment replaces one never ended: the client has started over.
        self._drop_segment()
        self._dropped_stamp = None
        self._open_segment(stt, stamp, sample_rate, listening=False)

    def _open_segment(
        self, stt: STT, stamp: Stamp, sample_rate: int, *, listening: bool
    ) -> VoiceSegment:
        assert self.engines.vad is not None
        self.voice = VoiceSegment(
            stamp,
            sample_rate=sample_rate,
            stt=stt,
            scorers=self.engines.vad,
            max_seconds=self.settings.max_segment_s,
            on_partial=self._partial,
            listening=listening,
        )
        return self.voice

    def _partial(self, text: str) -> None:
        self.send_control(protocol.user_partial(text))

    def _add_to_segment(self, data: str) -> None:
        stt = self._stt()
        voice = self.voice
        detection = self.detection
        if voice is None:
            if detection is not None:  # the server listens for the next turn
                self._segments += 1
                stamp = f"vad-{self._segments}"
                voice = self._open_segment(stt, stamp, detection.sample_rate, listening=True)
            elif self._dropped_stamp is not None:
                return  # the rest of a segment already refused for its length
            else:
                raise AudioError("speaking_part outside a segment: send start_speaking first")
        try:
            events = voice.add(data)
        except ProtocolError as exc:
            if exc.code is ErrorCode.LIMIT_EXCEEDED:  # drop it now, and what follows until its end
                self._dropped_stamp = None if detection is not None else voice.stamp
                self._drop_segment()
            raise
        if detection is not None:
            self._detect_turn(voice, events, detection)

    def _detect_turn(
        self, voice: VoiceSegment, events: list[Event], detection: TurnDetection
    ) -> None:
        activity = voice.activity
        if Event.SPEECH_STARTED in events and not voice.announced:
            voice.announced = True
            self.send_control(protocol.speech_started())
        if activity.speaking and not voice.barged_in:
            if activity.speech_run_ms >= detection.barge_in_ms:
                voice.barged_in = True
                self._barge_in()
            return
        if not activity.speech_seen or activity.silence_ms < detection.silence_ms:
            return
        self.send_control(protocol.speech_stopped())
        if not voice.opened_by_server:
            self._dropped_stamp = voice.stamp  # its end_speaking, if it comes, is answered
        if self._talking_turn(time.perf_counter()) is not None:
            # Too short to stop the bot (a cough, a "mhm"): not a turn of its own.
            self._drop_segment()
            return
        self._end_voice(voice)

    def _talking_turn(self, now: float) -> Turn | None:
        """The turn whose reply is streaming, or whose audio is likely still playing on the
        client (counted in real time from when it started to go out); None when the bot is
        quiet."""
        turn, last = self.turn, self._last_spoken
        if turn is not None and not turn.interrupted:
            return turn
        if last is not None and last.played_estimate(now) < last.audio_ms():
            return last
        return None

    def _barge_in(self) -> None:
        """The user talks over the bot: stop the reply as `interrupt` would. The client sent no
        `played_ms`; it is estimated from when the reply's audio started to go out, as played
        in real time."""
        now = time.perf_counter()
        talking = self._talking_turn(now)
        if talking is None:
            return
        log.debug("barge-in: %s talked over turn %d", self.username, talking.id)
        talking.metrics["played_ms_estimated"] = True
        if talking is self.turn:
            self._interrupt(talking.played_estimate(now))
        else:  # its reply has all been sent: stop the playing, cut what is kept of it
            self.send_control(protocol.stop_play(turn_id=talking.id))
            self._cut_last(talking.played_estimate(now))

    def _end_segment(self, stamp: object) -> None:
        self._stt()
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
        if voice.samples == 0:
            self._drop_segment()
            raise AudioError("the segment holds no audio: send speaking_part frames")
        self._end_voice(voice)

    def _end_voice(self, voice: VoiceSegment) -> None:
        """The segment is over: its recognition becomes the first step of a turn."""
        self.voice = None
        try:
            turn = self._new_turn("", "audio")
        except ProtocolError:
            voice.cancel()
            raise
        voice.close()
        turn.opening = {"wav_assemble_time": round(voice.segment.assemble_time, 4)}
        self._start_turn(turn, voice=voice)

    def _drop_segment(self) -> None:
        if self.voice is not None:
            self.voice.cancel()
            self.voice = None

    # --- turns ---------------------------------------------------------------------------

    def _new_turn(self, text: str, input_type: InputType) -> Turn:
        current = self.turn
        if current is not None and not current.interrupted:
            raise ProtocolError("Session is busy", code=ErrorCode.PROCESSING_ERROR)
        self._turn_ids += 1
        self._last_spoken = None
        return Turn(
            id=self._turn_ids,
            user_text=text,
            input_type=input_type,
            by_sentence=self.engines.tts is not None,
            after=current,
        )

    def _start_turn(self, turn: Turn, voice: VoiceSegment | None = None) -> None:
        self.turn = turn
        if self.phase is Phase.IDLE:
            self._transition(Phase.RESPONDING)
        turn.task = asyncio.create_task(self._run_turn(turn, voice), name=f"live-turn-{turn.id}")

    async def _emit(
        self, turn: Turn, frame: protocol.Frame, on_sent: Callable[[], None] | None
    ) -> None:
        await self.outbox.put(Outgoing(protocol.encode(frame), turn=turn, on_sent=on_sent))

    def _emit_now(self, turn: Turn, frame: protocol.Frame) -> None:
        self.outbox.put_control(Outgoing(protocol.encode(frame), turn=turn))

    async def _recognize(self, turn: Turn, voice: VoiceSegment) -> bool:
        """The voice turn's first step: its transcript becomes the user's text."""
        stt = self._stt()
        t0 = time.perf_counter()
        try:
            text = await voice.transcript()
        except STTError as exc:
            self.send_error(exc.code, exc.message, turn_id=turn.id)
            return False
        turn.opening.update(stt=stt.name, stt_time=round(time.perf_counter() - t0, 4))
        if not text:
            self.send_error(
                ErrorCode.EMPTY_TRANSCRIPT,
                "no speech was recognised in the segment",
                turn_id=turn.id,
            )
            return False
        turn.user_text = text
        return True

    async def _run_turn(self, turn: Turn, voice: VoiceSegment | None) -> None:
        try:
            if turn.after is not None:
                await turn.after.finished.wait()
            if voice is not None and not await self._recognize(turn, voice):
                self._finish(turn, Exchange("", ""), "nothing recognised")
                return
            runner = TurnRunner(
                turn,
                llm=self.engines.llm,
                tts=self.engines.tts,
                messages=self.conversation.messages_for(turn.user_text),
                emit=lambda frame, on_sent: self._emit(turn, frame, on_sent),
                emit_now=lambda frame: self._emit_now(turn, frame),
            )
            await runner.run()
        except asyncio.CancelledError:
            if voice is not None:
                voice.cancel()
            if turn.interrupted:
                return  # `_finish_interrupted` takes it from here
            raise
        except Exception:
            log.exception("turn %d of %s failed", turn.id, self.username)
            self.send_error(ErrorCode.INTERNAL_ERROR, "The turn failed", turn_id=turn.id)
            self._finish(turn, Exchange(turn.user_text, turn.heard_text()), "failed")
            return
        # A failed reply keeps what reached the client; a complete one, all of it.
        failed = runner.llm_error is not None
        assistant = turn.heard_text() if failed else "".join(runner.reply)
        total = round(time.perf_counter() - turn.started, 4)
        turn.metrics["wav_to_tts_total_time"] = total
        self._finish(
            turn, Exchange(turn.user_text, assistant), "model failed" if failed else "done"
        )
        self.send_control(protocol.metrics({"wav_to_tts_total_time": total}, turn_id=turn.id))

    def _interrupt(self, played_ms: int | None) -> None:
        turn = self.turn
        if turn is None:
            if played_ms is not None:
                self._cut_last(played_ms)
            return  # nothing to stop: a harmless no-op
        if turn.interrupted:
            return
        turn.interrupted = True  # from now on the writer skips this turn's frames
        turn.played_ms = played_ms
        if played_ms is not None:
            turn.metrics["played_ms"] = played_ms
        stop_sent = asyncio.get_running_loop().create_future()
        self.send_control(
            protocol.stop_play(turn_id=turn.id),
            on_sent=lambda: _resolve(stop_sent),
        )
        self.outbox.discard_stale()  # and frees them now rather than when their turn comes
        if turn.task is not None:
            turn.task.cancel()
        self._spawn(self._finish_interrupted(turn, stop_sent), f"live-interrupt-{turn.id}")

    async def _finish_interrupted(self, turn: Turn, stop_sent: asyncio.Future[None]) -> None:
        if turn.task is not None:
            await asyncio.gather(turn.task, return_exceptions=True)
        if turn.after is not None:  # ends go out in turn order
            await turn.after.finished.wait()
        # Every frame queued before `stop_play` has now been sent or dropped: `delivered` is final.
        await stop_sent
        self._finish(
            turn, Exchange(turn.user_text, turn.heard_text(), interrupted=True), "interrupted"
        )

    def _finish(self, turn: Turn, exchange: Exchange, outcome: str) -> None:
        """Record the turn and send its one `end`, with no await in between: once `end` is
        queued the session is idle, and a new turn's frames can only follow it."""
        self._log_turn(turn, exchange, outcome)
        if exchange.user:  # a voice turn cut off before its transcript has nothing to keep
            self._record(turn, exchange)
            self._save(turn, exchange)
        turn.finished.set()
        turn.after = None  # let the finished chain be freed
        if self.turn is turn:
            self.turn = None
            self._transition(Phase.IDLE)
            if not exchange.interrupted and any(ms for _, ms in turn.delivered):
                self._last_spoken = turn
        # An `end` means the turn is stored: it leaves once the save is done (and after the
        # error, should the save fail). Frames queued after it, a next turn's, wait with it.
        end = Outgoing(
            protocol.encode(protocol.end(interrupted=exchange.interrupted, turn_id=turn.id))
        )
        save = turn.save_task
        if save is not None:
            end.gate = lambda: _stored(save, turn.id)
        self.outbox.put_control(end)

    def _log_turn(self, turn: Turn, exchange: Exchange, outcome: str) -> None:
        """One line per turn at info: who, what kind, how long, how fast, how it ended. The
        words themselves only at debug level, whole."""
        if not log.isEnabledFor(logging.INFO):
            return
        m = turn.metrics
        figures = " ".join(
            f"{name}={m[key]:.3f}s"
            for name, key in _LOGGED_TIMES
            if isinstance(m.get(key), int | float)
        )
        log.info(
            "turn %d of %s: %s, %d chars in, %d out, %s%s",
            turn.id,
            self.username,
            turn.input_type,
            len(exchange.user),
            len(exchange.assistant),
            outcome,
            f"; {figures}" if figures else "",
        )
        log.debug(
            "turn %d of %s: user %r, assistant %r",
            turn.id,
            self.username,
            exchange.user,
            exchange.assistant,
        )

    def _save_cut_off(self) -> None:
        """Turns the client left in the middle of are saved as interrupted, with what it got."""
        turn = self.turn
        while turn is not None:
            if not turn.finished.is_set() and turn.user_text:
                turn.interrupted = True
                exchange = Exchange(turn.user_text, turn.heard_text(), interrupted=True)
                self._record(turn, exchange)
                self._save(turn, exchange)
            turn = turn.after

    def _cut_last(self, played_ms: int) -> None:
        """An `interrupt` after the last turn's `end`: the reply had all been sent, but the
        client was still playing it. What is kept of it is cut to what was played."""
        last, self._last_spoken = self._last_spoken, None
        if last is None:
            return
        whole = last.heard_text()
        last.played_ms = played_ms
        heard = last.heard_text()
        if heard == whole or last.exchange is None:  # all of it was played, or none kept
            return
        cut = Exchange(last.user_text, heard, interrupted=True)
        self.conversation.replace(last.exchange, cut)
        if self.live is not None:
            self.feed.replaced(
                self.username, self.live.id, last.exchange, cut, by=self.conversation
            )
        last.exchange = cut
        last.metrics["played_ms"] = played_ms
        save, metrics = last.save_task, dict(last.metrics)
        if save is None:
            return

        async def amend() -> None:
            saved = await save
            if isinstance(saved, LiveError):
                return
            try:
                await self.store.amend_reply(
                    saved.assistant_message_id, heard, interrupted=True, metrics=metrics
                )
            except LiveError as exc:
                log.error("could not amend turn %d of %s: %s", last.id, self.username, exc.message)
                self.send_error(exc.code, exc.message, turn_id=last.id)

        self._keep_saving(asyncio.create_task(amend(), name=f"live-amend-{last.id}"))

    def _record(self, turn: Turn, exchange: Exchange) -> None:
        """Keep the exchange in this connection's history, and tell the others on it."""
        turn.exchange = exchange
        self.conversation.record(exchange)
        if self.live is not None:
            self.feed.added(self.username, self.live.id, exchange, by=self.conversation)

    def _keep_saving(self, task: asyncio.Task[Any]) -> None:
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    def _save(self, turn: Turn, exchange: Exchange) -> None:
        if self.live is None:
            return
        record = TurnRecord(
            user_text=exchange.user,
            assistant_text=exchange.assistant,
            input_type=turn.input_type,
            user_at=turn.started_at,
            assistant_at=time.time(),
            interrupted=exchange.interrupted,
            metrics=dict(turn.metrics),
        )
        conversation_id = self.live.id

        async def save() -> SavedTurn | LiveError:
            try:
                return await self.store.save_turn(conversation_id, self.username, record)
            except LiveError as exc:  # the client hears of it before the turn's `end`
                log.error("could not save turn %d of %s: %s", turn.id, self.username, exc.message)
                return exc

        turn.save_task = asyncio.create_task(save(), name=f"live-save-{turn.id}")
        self._keep_saving(turn.save_task)


# The stage timings in a turn's log line: (name in the log, key in the turn's metrics).
_LOGGED_TIMES = (
    ("stt", "stt_time"),
    ("llm_first", "llm_ttft"),
    ("llm", "llm_total_time"),
    ("tts_first", "tts_first_frame_time"),
    ("first_audio", "speak_to_first_frame"),
    ("total", "wav_to_tts_total_time"),
)


def _yield_cpu() -> None:
    """Let whoever the frames just woke run now. Linux wakes a reader on the writer's own CPU
    when they share a host (a local client, an integrator's backend on loopback): without
    this, that reader waits until our turn's next step is done, so an interrupt's `stop_play`
    reached a local client only after the cancelled turn had been torn down. One call per
    batch of frames, not per frame."""
    if _sched_yield is not None:
        _sched_yield()


_sched_yield = getattr(os, "sched_yield", None)  # not on Windows


async def _stored(save: asyncio.Task[SavedTurn | LiveError], turn_id: int) -> list[str]:
    """Once the turn is saved, nothing to send before its `end`; if it could not be, why."""
    saved = await asyncio.shield(save)
    if isinstance(saved, LiveError):
        return [protocol.encode(protocol.error_frame(saved.code, saved.message, turn_id=turn_id))]
    return []


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
