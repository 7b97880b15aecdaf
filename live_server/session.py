"""One live connection: a reader loop, one writer task, and each turn as its own task.

The reader never waits for a turn, so `interrupt` is read while a reply streams. Interrupting
marks the turn (its queued frames are dropped from then on), sends `stop_play` at once, cancels
the turn task (which closes the provider streams), and then, once `stop_play` has reached the
socket and the turn's task is done, records what was heard and sends `end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect

from live_server import protocol
from live_server.conversation import Conversation, Exchange
from live_server.errors import CloseCode, ErrorCode, LiveError, ProtocolError
from live_server.outbox import Outbox, OutboxOverflow, Outgoing
from live_server.providers import LLM, TTS
from live_server.settings import Settings
from live_server.turn import InputType, Turn, TurnRunner

log = logging.getLogger(__name__)


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
        channel: protocol.ChannelType = "live",
        force_channel: bool = False,
    ) -> None:
        self.ws = websocket
        self.username = username
        self.settings = settings
        self.engines = engines
        self.channel = channel
        self.force_channel = force_channel
        self.phase = Phase.IDLE
        self.outbox = Outbox(settings.outbox_frames)
        self.conversation = Conversation(
            system_prompt=settings.system_prompt, max_messages=settings.history_max_messages
        )
        self.turn: Turn | None = None
        self._turn_ids = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- state -------------------------------------------------------------------------

    def _transition(self, to: Phase) -> None:
        if to not in _TRANSITIONS[self.phase]:
            raise RuntimeError(f"session cannot go from {self.phase.value} to {to.value}")
        log.debug("session %s: %s -> %s", self.username, self.phase.value, to.value)
        self.phase = to

    # --- connection life cycle -----------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or stops reading."""
        reader = asyncio.create_task(self._read_loop(), name="live-reader")
        writer = asyncio.create_task(self._write_loop(), name="live-writer")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            error = next((t.exception() for t in done if t.exception() is not None), None)
            if isinstance(error, SlowClient | OutboxOverflow):
                log.warning(
                    "Client is not reading; closing %s's connection: %s", self.username, error
                )
                await self._close(CloseCode.TRY_AGAIN_LATER, "Client is not reading")
            elif error is not None:
                log.error("session %s failed", self.username, exc_info=error)
                await self._close(CloseCode.INTERNAL_ERROR, "Internal error")
        finally:
            self._transition(Phase.CLOSED)
            await self._cancel_all(reader, writer)

    async def _close(self, code: CloseCode, reason: str) -> None:
        # A client that does not read may not take the close frame either; don't wait forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), timeout=1.0)

    async def _cancel_all(self, *tasks: asyncio.Task[None]) -> None:
        pending = [*tasks, *self._tasks]
        if self.turn is not None and self.turn.task is not None:
            pending.append(self.turn.task)
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
                self._dispatch(frame)
            except LiveError as exc:
                self.send_error(exc.code, exc.message)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.settings.send_timeout_s
        while True:
            await self.outbox.wait()
            # Everything queued goes out in one wake-up. One timer per batch, pushed forward
            # for each further frame: the limit holds per frame without a new timer per frame.
            try:
                async with asyncio.timeout(limit) as deadline:
                    first = True
                    while (item := self.outbox.pop()) is not None:
                        if item.turn is not None and item.turn.interrupted:
                            continue
                        if not first:
                            deadline.reschedule(loop.time() + limit)
                        first = False
                        await self.ws.send_text(item.text)
                        if item.on_sent is not None:
                            item.on_sent()
            except TimeoutError:
                raise SlowClient(f"a frame waited over {limit:g} s to be sent") from None

    # --- frames --------------------------------------------------------------------------

    def send_control(
        self, frame: protocol.Frame, on_sent: Callable[[], None] | None = None
    ) -> None:
        self.outbox.put_control(Outgoing(protocol.encode(frame), on_sent=on_sent))

    def send_error(self, code: ErrorCode, message: str, *, turn_id: int | None = None) -> None:
        self.send_control(protocol.error_frame(code, message, turn_id=turn_id))

    def _dispatch(self, frame: protocol.ClientFrame) -> None:
        match frame:
            case protocol.TextInput(text=text):
                self._start_turn(text, "text")
            case protocol.Interrupt():
                self._interrupt()
            case protocol.StartSpeaking() | protocol.SpeakingPart() | protocol.EndSpeaking():
                raise ProtocolError(
                    "voice input is not available on this server yet; send text_input",
                    code=ErrorCode.UNSUPPORTED,
                )
            case protocol.ChatFrame():
                raise ProtocolError(
                    "chat mode (ct=chat) is not available on this server yet; use ct=live",
                    code=ErrorCode.UNSUPPORTED,
                )

    # --- turns ---------------------------------------------------------------------------

    def _start_turn(self, text: str, input_type: InputType) -> None:
        if self.turn is not None:
            raise ProtocolError("Session is busy", code=ErrorCode.PROCESSING_ERROR)
        self._turn_ids += 1
        turn = Turn(
            id=self._turn_ids,
            user_text=text,
            input_type=input_type,
            by_sentence=self.engines.tts is not None,
        )
        self.turn = turn
        self._transition(Phase.RESPONDING)
        turn.task = asyncio.create_task(self._run_turn(turn), name=f"live-turn-{turn.id}")

    async def _emit(
        self, turn: Turn, frame: protocol.Frame, on_sent: Callable[[], None] | None
    ) -> None:
        await self.outbox.put(Outgoing(protocol.encode(frame), turn=turn, on_sent=on_sent))

    def _emit_now(self, turn: Turn, frame: protocol.Frame) -> None:
        self.outbox.put_control(Outgoing(protocol.encode(frame), turn=turn))

    async def _run_turn(self, turn: Turn) -> None:
        runner = TurnRunner(
            turn,
            llm=self.engines.llm,
            tts=self.engines.tts,
            messages=self.conversation.messages_for(turn.user_text),
            emit=lambda frame, on_sent: self._emit(turn, frame, on_sent),
            emit_now=lambda frame: self._emit_now(turn, frame),
        )
        try:
            await runner.run()
        except asyncio.CancelledError:
            if turn.interrupted:
                return  # `_finish_interrupted` takes it from here
            raise
        except Exception:
            log.exception("turn %d of %s failed", turn.id, self.username)
            self.send_error(ErrorCode.INTERNAL_ERROR, "The turn failed", turn_id=turn.id)
        # A failed reply keeps what reached the client; a complete one, all of it.
        failed = runner.llm_error is not None
        assistant = turn.heard_text() if failed else "".join(runner.reply)
        self._finish(turn, Exchange(turn.user_text, assistant))
        total = round(time.perf_counter() - turn.started, 4)
        self.send_control(protocol.metrics({"wav_to_tts_total_time": total}, turn_id=turn.id))

    def _interrupt(self) -> None:
        turn = self.turn
        if turn is None or turn.interrupted:
            return  # nothing to stop: a harmless no-op
        turn.interrupted = True  # from now on the writer skips this turn's frames
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
        # Every frame queued before `stop_play` has now been sent or dropped: `delivered` is final.
        await stop_sent
        self._finish(turn, Exchange(turn.user_text, turn.heard_text(), interrupted=True))

    def _finish(self, turn: Turn, exchange: Exchange) -> None:
        """Record the turn and send its one `end`, with no await in between: once `end` is
        queued the session is idle, and a new turn's frames can only follow it."""
        self.conversation.record(exchange)
        self.turn = None
        self._transition(Phase.IDLE)
        self.send_control(protocol.end(interrupted=exchange.interrupted, turn_id=turn.id))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
