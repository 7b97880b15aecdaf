"""The logic of one live connection, protocol-neutral: commands in, events out.

A session takes commands (a text turn, an interrupt, voice segments, or, for the Realtime API,
inputs that wait for an explicit reply) and tells its `Output` what happens as typed events; a
protocol adapter turns client frames into commands and a codec turns events into frames. The
session never touches a socket, so it runs in process with scripted engines.

Turn order: each turn runs as its own task, so an interrupt is taken while a reply streams.
Interrupting marks the turn (its queued frames are dropped from then on), sends `Stopped` at
once, cancels the turn task (which closes the provider streams), and then, once `Stopped` has
reached the client and the task is done, records what was heard and sends the turn's one
`Ended`. A turn asked for while an interrupted one is still finishing starts after its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import Enum
from typing import Any, Protocol

from live_server.core import events
from live_server.core.conversation import Conversation, ConversationFeed, Exchange
from live_server.core.history import History, LiveConversation
from live_server.core.session_options import SessionOptions
from live_server.core.speculation import Speculation
from live_server.core.turn import Emit, EmitNow, Turn, TurnRunner
from live_server.core.turn_state import TurnEvent, TurnState
from live_server.core.voice_input import VoiceInput
from live_server.core.voice_segment import VoiceSegment
from live_server.engines import TTS, Engines
from live_server.errors import ErrorCode, ProtocolError, STTError
from live_server.settings import Settings
from live_server.storage import Store

log = logging.getLogger(__name__)
OnSent = Callable[[], None]
Tell = Callable[[events.Event], None]


class Droppable(Protocol):
    """A turn as the writer sees it: once it is interrupted its frames are never sent."""

    @property
    def interrupted(self) -> bool: ...


class Output(Protocol):
    """Where a session's events go: a connection, or a test's list."""

    async def send(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None: ...

    def send_now(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None: ...

    def send_when(self, event: events.Event, ready: Awaitable[events.Event | None]) -> None: ...

    def discard_stale(self) -> None: ...


class Phase(Enum):
    """What a session is doing, read off its turn: replying while it has one."""

    IDLE = "idle"
    RESPONDING = "responding"
    CLOSED = "closed"


class Recognising:
    """A finished segment of speech being recognised: it starts at once, whether or not its
    turn may start yet."""

    def __init__(
        self,
        voice: VoiceSegment,
        input_id: int,
        stt_name: str,
        tell: Callable[[events.Event], None],
    ) -> None:
        self.voice = voice
        self.input_id = input_id
        self.stt_name = stt_name
        self.assemble_time = round(voice.segment.assemble_time, 4)
        self.stt_time: float | None = None
        self._tell = tell
        self.task = asyncio.create_task(self._recognise(), name=f"live-stt-{input_id}")

    async def _recognise(self) -> str:
        t0 = time.perf_counter()
        text = await self.voice.transcript()
        self.stt_time = round(time.perf_counter() - t0, 4)
        seconds = self.voice.samples / self.voice.segment.sample_rate
        self._tell(events.Transcript(self.input_id, text, round(seconds, 3)))
        return text

    def cancel(self) -> None:
        self.task.cancel()
        self.voice.cancel()


Source = str | Recognising


class Session:
    def __init__(
        self,
        *,
        username: str,
        settings: Settings,
        engines: Engines,
        store: Store,
        feed: ConversationFeed,
        live: LiveConversation | None,
        output: Output,
        options: SessionOptions | None = None,
    ) -> None:
        self.username = username
        self.settings = settings
        self.engines = engines
        self.output = output
        self._closed = False
        conversation = live.conversation if live is not None else Conversation.configured(settings)
        self.history = History(
            username=username,
            store=store,
            feed=feed,
            live=live,
            conversation=conversation,
            report=self.tell,
        )
        self.voice = VoiceInput(
            stt=engines.stt,
            vad=engines.vad,
            max_seconds=settings.max_segment_s,
            listener=self,
            end_model=engines.end_model,
        )
        self.turn: Turn | None = None
        # A reply started at a pause, held back until the turn ends (`speculation`).
        self._speculation: Speculation | None = None
        self.speculations = {"used": 0, "dropped": 0}
        self._dropped_since_turn = 0  # speculative replies dropped since the last turn began
        # The last turn that ended normally with audio: the client may still be playing it.
        self._last_spoken: Turn | None = None
        # The latest turns a client may still cut by id (`options.cuttable_turns` of them).
        self._recent: dict[int, Turn] = {}
        self._pending: list[Source] = []  # inputs waiting for `respond()`
        self._turn_ids = 0
        self._input_ids = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._options = SessionOptions()
        self.configure(options or SessionOptions())

    @property
    def conversation(self) -> Conversation:
        return self.history.conversation

    # --- options -------------------------------------------------------------------------

    @property
    def options(self) -> SessionOptions:
        """The options in force; `instructions` is always the prompt the model is given."""
        return self._options

    def configure(self, options: SessionOptions) -> None:
        """Apply `options` whole. Turns already running keep what they started with."""
        if options.instructions is not None:
            self.conversation.system_prompt = options.instructions
        options = replace(options, instructions=self.conversation.system_prompt)
        self.voice.detection = options.detection
        self.voice.implicit_rate = options.implicit_rate
        self._options = options

    @property
    def tts(self) -> TTS | None:
        """The voice replies are spoken with; None: text replies only."""
        return self.engines.tts if self._options.speak else None

    @property
    def replying(self) -> bool:
        """A reply is under way and not interrupted (what Realtime's `response.cancel` stops)."""
        return self.turn is not None and not self.turn.interrupted

    # --- state -------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        if self._closed:
            return Phase.CLOSED
        return Phase.IDLE if self.turn is None else Phase.RESPONDING

    def open(self) -> None:
        """The connection is up: announce the stored conversation, and follow it."""
        live = self.history.live
        if live is not None:
            messages = 2 * len(self.conversation)
            self.tell(events.ConversationOpened(live.id, live.resumed, messages))
            self.history.join()

    async def aclose(self) -> None:
        """The client is gone: stop the turns, keep what it got of them, finish saving."""
        if self._closed:
            raise RuntimeError("the session is already closed")
        self._closed = True
        self.voice.drop()
        self.drop_speculation()
        for source in self._pending:
            if isinstance(source, Recognising):
                source.cancel()
        pending = list(self._tasks)
        turn = self.turn
        while turn is not None:
            if turn.task is not None:
                pending.append(turn.task)
            turn = turn.after
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.history.leave()
        self._save_cut_off()
        await self.history.drain()

    def tell(self, event: events.Event) -> None:
        self.output.send_now(event)

    # --- commands ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A typed turn: the text, and a reply to it."""
        self._start_turn(self._new_turn([text]))

    def add_text(self, text: str) -> int:
        """A typed input that waits for `respond()`; its id."""
        self._input_ids += 1
        self._pending.append(text)
        self.tell(events.InputAdded(self._input_ids, "text", text))
        return self._input_ids

    def start_speaking(self, stamp: object, sample_rate: int) -> None:
        self.voice.start(stamp, sample_rate)

    def add_audio(self, data: str) -> None:
        """A part of the user's speech (base64 PCM) for the open segment, or a new one."""
        self.voice.add(data)

    def end_speaking(self, stamp: object) -> None:
        self.voice.end(stamp)

    def commit_audio(self) -> None:
        """The open segment, whatever its stamp, is the user's input (Realtime's commit)."""
        self.voice.commit()

    def clear_audio(self) -> None:
        """Forget the open segment's audio."""
        self.voice.drop()

    def respond(self) -> None:
        """Reply to the inputs added since the last reply."""
        if not self._pending:
            raise ProtocolError(
                "there is no new input to reply to: add a user message or commit audio first",
                code=ErrorCode.INVALID_MESSAGE,
            )
        turn = self._new_turn(self._pending)
        self._pending = []
        self._start_turn(turn)

    def interrupt(self, played_ms: int | None) -> None:
        turn = self.turn
        if turn is None:
            if played_ms is not None:
                self._cut_last(played_ms)
            return  # nothing to stop: a harmless no-op
        if turn.interrupted:
            return
        turn.interrupt(played_ms)  # from now on the connection skips this turn's frames
        stop_sent = asyncio.get_running_loop().create_future()
        self.output.send_now(events.Stopped(turn.id), on_sent=lambda: _resolve(stop_sent))
        self.output.discard_stale()  # and frees them now rather than when their turn comes
        if turn.task is not None:
            turn.task.cancel()
        self._spawn(self._finish_interrupted(turn, stop_sent), f"live-interrupt-{turn.id}")

    def cut(self, turn_id: int, played_ms: int) -> None:
        """The client played only `played_ms` of a turn's reply: keep only that. A running
        turn is interrupted there."""
        turn = self._recent.get(turn_id)
        if turn is None:
            raise ProtocolError(f"no reply {turn_id} to cut", code=ErrorCode.NOT_FOUND)
        if turn is self.turn and not turn.interrupted:
            self.interrupt(played_ms)
            kept = turn.heard_text()
        elif turn.exchange is None:  # interrupted, not recorded yet: it will keep this much
            turn.hear(played_ms)
            kept = turn.heard_text()
        else:
            if turn is self._last_spoken:
                self._last_spoken = None
            self.history.cut(turn, played_ms)
            kept = turn.exchange.assistant
        self.tell(events.Truncated(turn.id, played_ms, kept))

    # --- voice (`voice_input.Listener`) ----------------------------------------------------

    def segment_ended(self, voice: VoiceSegment) -> None:
        stt = self.voice.stt()
        turn: Turn | None = None
        if self._options.auto_respond:
            try:
                turn = self._new_turn([], adopt=True)
            except ProtocolError:
                voice.cancel()
                raise
            turn.opening.update(voice.turn_end)
            if self._dropped_since_turn:
                turn.opening["speculations_dropped"] = self._dropped_since_turn
        else:
            self.drop_speculation()
        self._dropped_since_turn = 0
        voice.close()
        self._input_ids += 1
        spoken = Recognising(voice, self._input_ids, stt.name, self.tell)
        self.tell(events.InputAdded(spoken.input_id, "audio"))
        if turn is not None:
            turn.sources = [spoken]
            turn.input_type = "audio"
            self._start_turn(turn)
        else:
            self._pending.append(spoken)

    def speculate(self, text: str) -> None:
        """Start a reply to `text`, held back (`speculation`), if the session is idle."""
        current = self._speculation
        if current is not None and current.text == text:
            return
        self.drop_speculation()
        if self._closed or self.turn is not None or not self._options.auto_respond:
            return
        turn = Turn(
            id=self._turn_ids + 1,  # the id it will have if adopted
            user_text=text,
            input_type="audio",
            state=TurnState.HELD,
            by_sentence=self.tts is not None,
        )
        speculation = Speculation(text, turn, self.output)
        speculation.start(self._runner(turn, speculation.emit, speculation.emit_now))
        self._speculation = speculation
        log.debug("speculating on %r for %s", text, self.username)

    def drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            self._dropped(speculation)

    def _dropped(self, speculation: Speculation) -> None:
        speculation.drop()
        self.speculations["dropped"] += 1
        self._dropped_since_turn += 1
        log.debug("dropped the speculative reply to %r", speculation.text)

    def bot_talking(self, now: float) -> bool:
        return self._talking_turn(now) is not None

    def _talking_turn(self, now: float) -> Turn | None:
        """The turn whose reply is streaming, or whose audio is likely still playing on the
        client (counted in real time from when it started to go out); None when quiet."""
        turn, last = self.turn, self._last_spoken
        if turn is not None and not turn.interrupted:
            return turn
        if last is not None and last.played_estimate(now) < last.audio_ms():
            return last
        return None

    def barge_in(self) -> None:
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
            self.interrupt(talking.played_estimate(now))
        else:  # its reply has all been sent: stop the playing, cut what is kept of it
            self.tell(events.Stopped(talking.id))
            self._cut_last(talking.played_estimate(now))

    # --- turns ---------------------------------------------------------------------------

    def _new_turn(self, sources: list[Source], *, adopt: bool = False) -> Turn:
        """A new turn; with `adopt`, the speculative reply's turn when there is one (a voice
        turn whose text is not known yet: `_run_turn` checks it)."""
        current = self.turn
        if current is not None and not current.interrupted:
            self.drop_speculation()
            raise ProtocolError("Session is busy", code=ErrorCode.PROCESSING_ERROR)
        if not adopt:
            self.drop_speculation()
        self._turn_ids += 1
        self._last_spoken = None
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.turn.id == self._turn_ids:
            turn = speculation.turn
            turn.move(TurnEvent.ADOPT)
            turn.speculation = speculation  # `_run_turn` uses it if the words are the same
        else:
            if speculation is not None:
                self._dropped(speculation)
            spoken = adopt or any(isinstance(s, Recognising) for s in sources)
            turn = Turn(
                id=self._turn_ids,
                user_text="\n".join(s for s in sources if isinstance(s, str)),
                input_type="audio" if spoken else "text",
                by_sentence=self.tts is not None,
            )
        turn.after = current
        turn.sources = list(sources)
        if self._options.cuttable_turns:
            self._recent[turn.id] = turn
            if len(self._recent) > self._options.cuttable_turns:
                del self._recent[next(iter(self._recent))]
        return turn

    def _start_turn(self, turn: Turn) -> None:
        if self._closed:
            raise RuntimeError("a closed session starts no turn")
        self.turn = turn
        turn.task = asyncio.create_task(self._run_turn(turn), name=f"live-turn-{turn.id}")

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _user_text(self, turn: Turn) -> bool:
        """The turn's first step: its inputs become the user's text (recognising speech)."""
        texts: list[str] = []
        for source in turn.sources:
            if isinstance(source, str):
                texts.append(source)
                continue
            turn.opening.setdefault("wav_assemble_time", source.assemble_time)
            try:
                text = await source.task
            except STTError as exc:
                self.tell(events.Failed(exc.code, exc.message, turn.id))
                return False
            turn.opening.update(stt=source.stt_name, stt_time=source.stt_time)
            if text:
                texts.append(text)
        if not texts:
            self.tell(
                events.Failed(
                    ErrorCode.EMPTY_TRANSCRIPT, "no speech was recognised in the segment", turn.id
                )
            )
            return False
        turn.user_text = "\n".join(texts)
        return True

    async def _run_turn(self, turn: Turn) -> None:
        runner: TurnRunner | None = None
        try:
            if turn.after is not None:
                await turn.after.finished.wait()
            speculation = turn.speculation
            if turn.input_type == "audio" and not await self._user_text(turn):
                if speculation is not None:
                    self._dropped(speculation)
                self._finish(turn, Exchange("", ""), "nothing recognised")
                return
            turn.move(TurnEvent.REPLY)
            if speculation is not None and speculation.text == turn.user_text:
                assert speculation.runner is not None and speculation.task is not None
                self.speculations["used"] += 1
                turn.opening["speculation"] = "used"
                runner = speculation.runner
                await speculation.release({"input_type": turn.input_type, **turn.opening})
                await speculation.task
            else:
                if speculation is not None:  # the final words differ from the guess
                    self._dropped(speculation)
                    turn.opening["speculation"] = "dropped"
                runner = self._runner(
                    turn,
                    lambda event, on_sent: self.output.send(event, turn=turn, on_sent=on_sent),
                    lambda event: self.output.send_now(event, turn=turn),
                )
                await runner.run()
        except asyncio.CancelledError:
            if turn.speculation is not None:
                turn.speculation.drop()  # stops its reply, if it was cancelled before its end
            for source in turn.sources:
                if isinstance(source, Recognising):
                    source.cancel()
            if turn.interrupted:
                return  # `_finish_interrupted` takes it from here
            raise
        except Exception:
            log.exception("turn %d of %s failed", turn.id, self.username)
            self.tell(events.Failed(ErrorCode.INTERNAL_ERROR, "The turn failed", turn.id))
            self._finish(turn, Exchange(turn.user_text, turn.heard_text()), "failed")
            return
        # A failed reply keeps what reached the client; a complete one, all of it.
        failed = runner.reply.failed
        assistant = turn.heard_text() if failed else runner.reply.text
        total = round(time.perf_counter() - turn.started, 4)
        turn.metrics["wav_to_tts_total_time"] = total
        self._finish(
            turn,
            Exchange(turn.user_text, assistant),
            "model failed" if failed else "done",
            failed=failed,
        )
        self.tell(events.Metrics(turn.id, {"wav_to_tts_total_time": total}))

    def _runner(self, turn: Turn, emit: Emit, emit_now: EmitNow) -> TurnRunner:
        return TurnRunner(
            turn,
            llm=self.engines.llm,
            tts=self.tts,
            messages=self.conversation.messages_for(turn.user_text),
            emit=emit,
            emit_now=emit_now,
        )

    async def _finish_interrupted(self, turn: Turn, stop_sent: asyncio.Future[None]) -> None:
        if turn.task is not None:
            await asyncio.gather(turn.task, return_exceptions=True)
        if turn.after is not None:  # ends go out in turn order
            await turn.after.finished.wait()
        # Every frame queued before `Stopped` has now been sent or dropped: `delivered` is final.
        await stop_sent
        self._finish(
            turn, Exchange(turn.user_text, turn.heard_text(), interrupted=True), "interrupted"
        )

    def _finish(
        self, turn: Turn, exchange: Exchange, outcome: str, *, failed: bool = False
    ) -> None:
        """Record the turn and send its one `Ended`, with no await in between: once it is
        queued the session is idle, and a new turn's frames can only follow it."""
        self.history.log_turn(turn, exchange, outcome)
        if exchange.user:  # a voice turn cut off before its transcript has nothing to keep
            self.history.keep(turn, exchange)
        turn.move(TurnEvent.FINISH)
        turn.after = None  # let the finished chain be freed
        turn.sources = []
        turn.speculation = None
        if self.turn is turn:
            self.turn = None
            if not exchange.interrupted and any(ms for _, ms in turn.delivered):
                self._last_spoken = turn
        # An end means the turn is stored: it leaves once the save is done (and after the
        # error, should the save fail). Frames queued after it, a next turn's, wait with it.
        ended = events.Ended(
            turn.id,
            interrupted=exchange.interrupted,
            user_text=exchange.user,
            assistant=exchange.assistant,
            failed=failed or outcome in ("failed", "nothing recognised"),
        )
        self.output.send_when(ended, self.history.stored(turn))

    def _save_cut_off(self) -> None:
        """Turns the client left in the middle of are saved as interrupted, with what it got."""
        turn = self.turn
        while turn is not None:
            if not turn.finished.is_set() and turn.user_text:
                if not turn.interrupted:
                    turn.interrupt(None)
                exchange = Exchange(turn.user_text, turn.heard_text(), interrupted=True)
                self.history.keep(turn, exchange)
                turn.move(TurnEvent.FINISH)
            turn = turn.after

    def _cut_last(self, played_ms: int) -> None:
        """An `interrupt` after the last turn's end: the reply had all been sent, but the
        client was still playing it. What is kept of it is cut to what was played."""
        last, self._last_spoken = self._last_spoken, None
        if last is not None:
            heard = self.history.cut(last, played_ms)
            if heard is not None:
                self.tell(events.Truncated(last.id, played_ms, heard))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
