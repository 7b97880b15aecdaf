"""A session's turns: at most one replying at a time, each its own task, their ends in order,
and the speculative reply that may become the next one.

Interrupting a turn marks it (its queued frames are dropped from then on), sends `Stopped` at
once, cancels its task (which closes the provider streams), and then, once `Stopped` has
reached the client and the task is done, records what was heard and sends the turn's one
`Ended`. A turn asked for while an interrupted one is still finishing starts after its end.
Every change of a turn's state goes through `Turn.move` (`turn_state`). No socket, no wire
format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from live_server.core import events
from live_server.core.conversation import Exchange
from live_server.core.history import History
from live_server.core.inputs import Recognising, Source
from live_server.core.output import Output
from live_server.core.session_options import SessionOptions
from live_server.core.speculation import Speculation
from live_server.core.turn import Send, SendNow, Turn, TurnRunner
from live_server.core.turn_state import TurnEvent, TurnState
from live_server.engines import TTS, ChatPrefill, Engines
from live_server.errors import ErrorCode, LLMError, ProtocolError, STTError

log = logging.getLogger(__name__)


class Turns:
    def __init__(
        self,
        *,
        username: str,
        history: History,
        output: Output,
        engines: Engines,
        options: Callable[[], SessionOptions],
    ) -> None:
        self.username = username
        self.history = history
        self.output = output
        self._engines = engines
        self._options = options  # the session's, in force when each turn starts
        self.closed = False
        self.current: Turn | None = None
        self._ids = 0
        # The last turn that ended normally with audio: the client may still be playing it.
        self._last_spoken: Turn | None = None
        # The latest turns a client may still cut by id.
        self._recent: dict[int, Turn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading: asyncio.Task[None] | None = None  # the model reading a prompt ahead
        # A reply started at a pause, held back until the turn ends (`speculation`).
        self._speculation: Speculation | None = None
        self.speculations = {"used": 0, "dropped": 0}
        self.dropped_since_turn = 0  # speculative replies dropped since the last turn began

    @property
    def tts(self) -> TTS | None:
        """The voice replies are spoken with; None: text replies only (or `speak` off)."""
        return self._engines.tts if self._options().speak else None

    def tell(self, event: events.Event) -> None:
        self.output.send_now(event)

    async def aclose(self) -> None:
        """Stop every turn, and keep what the client got of those it left in the middle of."""
        self.closed = True
        self.drop_speculation()
        pending = list(self._tasks)
        turn = self.current
        while turn is not None:
            if turn.task is not None:
                pending.append(turn.task)
            turn = turn.after
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def new(self, sources: list[Source], *, adopt: bool = False) -> Turn:
        """A new turn; with `adopt`, the speculative reply's turn when there is one (a voice
        turn whose text is not known yet: `_run` checks it)."""
        current = self.current
        if current is not None and not current.interrupted:
            self.drop_speculation()
            raise ProtocolError("Session is busy", code=ErrorCode.PROCESSING_ERROR)
        if not adopt:
            self.drop_speculation()
        self._ids += 1
        self._last_spoken = None
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.turn.id == self._ids:
            turn = speculation.turn
            turn.move(TurnEvent.ADOPT)
            turn.speculation = speculation  # `_run` uses it if the words are the same
        else:
            if speculation is not None:
                self._dropped(speculation)
            spoken = adopt or any(isinstance(s, Recognising) for s in sources)
            turn = Turn(
                id=self._ids,
                user_text="\n".join(s for s in sources if isinstance(s, str)),
                input_type="audio" if spoken else "text",
                by_sentence=self.tts is not None,
            )
        turn.after = current
        turn.sources = list(sources)
        if cuttable := self._options().cuttable_turns:
            self._recent[turn.id] = turn
            if len(self._recent) > cuttable:
                del self._recent[next(iter(self._recent))]
        return turn

    def start(self, turn: Turn) -> None:
        if self.closed:
            raise RuntimeError("a closed session starts no turn")
        self.current = turn
        turn.task = asyncio.create_task(self._run(turn), name=f"live-turn-{turn.id}")

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

    async def _run(self, turn: Turn) -> None:
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
                runner = self.runner(
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

    def runner(self, turn: Turn, send: Send, send_now: SendNow) -> TurnRunner:
        return TurnRunner(
            turn,
            llm=self._engines.llm,
            tts=self.tts,
            messages=self.history.conversation.messages_for(turn.user_text),
            send=send,
            send_now=send_now,
            show_reasoning=self._options().show_reasoning,
            language=self._engines.language,
            read_ahead=self._reading,
        )

    def interrupt(self, played_ms: int | None) -> None:
        turn = self.current
        if turn is None:
            if played_ms is not None:
                self.cut_last(played_ms)
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
        if self.current is turn:
            self.current = None
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

    def cut(self, turn_id: int, played_ms: int) -> None:
        """The client played only `played_ms` of a turn's reply: keep only that. A running
        turn is interrupted there."""
        turn = self._recent.get(turn_id)
        if turn is None:
            raise ProtocolError(f"no reply {turn_id} to cut", code=ErrorCode.NOT_FOUND)
        if turn is self.current and not turn.interrupted:
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

    def cut_last(self, played_ms: int) -> None:
        """An `interrupt` after the last turn's end: the reply had all been sent, but the
        client was still playing it. What is kept of it is cut to what was played."""
        last, self._last_spoken = self._last_spoken, None
        if last is not None:
            heard = self.history.cut(last, played_ms)
            if heard is not None:
                self.tell(events.Truncated(last.id, played_ms, heard))

    def save_cut_off(self) -> None:
        """Turns the client left in the middle of are saved as interrupted, with what it got."""
        turn = self.current
        while turn is not None:
            if not turn.finished.is_set() and turn.user_text:
                if not turn.interrupted:
                    turn.interrupt(None)
                exchange = Exchange(turn.user_text, turn.heard_text(), interrupted=True)
                self.history.keep(turn, exchange)
                turn.move(TurnEvent.FINISH)
            turn = turn.after

    def talking(self, now: float) -> Turn | None:
        """The turn whose reply is streaming, or whose audio is likely still playing on the
        client (counted in real time from when it started to go out); None when quiet."""
        turn, last = self.current, self._last_spoken
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
        talking = self.talking(now)
        if talking is None:
            return
        log.debug("barge-in: %s talked over turn %d", self.username, talking.id)
        talking.metrics["played_ms_estimated"] = True
        if talking is self.current:
            self.interrupt(talking.played_estimate(now))
        else:  # its reply has all been sent: stop the playing, cut what is kept of it
            self.tell(events.Stopped(talking.id))
            self.cut_last(talking.played_estimate(now))

    def speculate(self, text: str, *, allowed: bool) -> None:
        """Start a reply to `text`, held back (`speculation`), if the session is idle."""
        current = self._speculation
        if current is not None and current.text == text:
            return
        self.drop_speculation()
        if self.closed or self.current is not None or not allowed:
            return
        turn = Turn(
            id=self._ids + 1,  # the id it will have if adopted
            user_text=text,
            input_type="audio",
            state=TurnState.HELD,
            by_sentence=self.tts is not None,
        )
        speculation = Speculation(text, turn, self.output)
        speculation.start(self.runner(turn, speculation.send, speculation.send_now))
        self._speculation = speculation
        log.debug("speculating on %r for %s", text, self.username)

    def read_ahead(self, text: str) -> None:
        """Have a model that keeps what it reads (`ChatPrefill`) read the prompt a reply to
        `text` would have, while the speaker goes on: the reply to the final words then reads
        only those that are new. Not while a reply runs (its model is busy) nor while the last
        read goes on (the next partial transcript comes soon). On two cores, with the
        embedded model: end of speech -> first audio mean 841 -> 776 ms, p90 1,076 -> 927 ms
        (21 turns each, interleaved). Having the end-of-turn model read its prompt ahead as
        well was slower (mean 882 ms): the reads still running at the pause held up its
        verdict."""
        llm = self._engines.llm
        if self.closed or self.current is not None or not isinstance(llm, ChatPrefill):
            return
        if self._reading is not None and not self._reading.done():
            return
        messages = self.history.conversation.messages_for(text)

        async def read() -> None:
            try:
                await llm.prefill_chat(messages)
            except LLMError as exc:  # only time is lost: the reply reads it all
                log.debug("the model did not read ahead: %s", exc)

        self._reading = asyncio.create_task(read(), name="live-read-ahead")
        self._tasks.add(self._reading)
        self._reading.add_done_callback(self._tasks.discard)

    def drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            self._dropped(speculation)

    def _dropped(self, speculation: Speculation) -> None:
        speculation.drop()
        self.speculations["dropped"] += 1
        self.dropped_since_turn += 1
        log.debug("dropped the speculative reply to %r", speculation.text)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
