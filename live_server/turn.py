"""One turn of a live conversation: LLM deltas -> sentence splitter -> TTS -> frames.

The LLM feeder and the TTS feeder run as two tasks joined by a bounded sentence queue, so audio
for the first sentence goes out while the model is still writing later ones. Every frame goes
to the session's outbox tagged with its turn, so an interrupted turn's frames are dropped
before they reach the socket. Cancelling `run()` cancels both feeders and closes the provider
streams; `end` is not sent here but by the session, which owns the turn's life cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from live_server import protocol
from live_server.conversation import Exchange, join_sentences
from live_server.errors import ErrorCode, LiveError, LLMError, TTSError
from live_server.providers import LLM, TTS, ChatMessage, Outcome
from live_server.splitter import SentenceSplitter
from live_server.storage import SavedTurn

InputType = Literal["text", "audio"]
Emit = Callable[[protocol.Frame, "Callable[[], None] | None"], Awaitable[None]]
EmitNow = Callable[[protocol.Frame], None]
SENTENCE_QUEUE = 16


@dataclass(eq=False)
class Turn:
    id: int
    user_text: str
    input_type: InputType
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)  # wall clock, for the saved message
    interrupted: bool = False
    task: asyncio.Task[None] | None = None
    # An interrupted turn still finishing: this one starts, and ends, only after it.
    after: Turn | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Extra fields for the opening `metrics` frame (voice turns: the STT figures).
    opening: dict[str, Any] = field(default_factory=dict)
    # Text whose frames have reached the socket, with its audio's length in ms: sentences whose
    # audio was sent, or deltas when there is no TTS. This, not the full reply, is what an
    # interrupted turn keeps.
    delivered: list[tuple[str, int]] = field(default_factory=list)
    by_sentence: bool = True  # False when there is no TTS: `delivered` then holds deltas
    # How much of the turn's audio the client says it played before interrupting.
    played_ms: int | None = None
    # The figures of the turn's `metrics` frames, kept with the saved reply.
    metrics: dict[str, Any] = field(default_factory=dict)
    # When the first audio of the reply reached the socket (perf_counter), for estimating what
    # a client that sends no `played_ms` has played.
    audio_started: float | None = None
    # Saving the turn: its stored ids, or why it could not be saved.
    save_task: asyncio.Task[SavedTurn | LiveError] | None = None
    exchange: Exchange | None = None  # as kept in the history, once the turn is over

    def audio_ms(self) -> int:
        """The length of the reply's audio that reached the client."""
        return sum(ms for _, ms in self.delivered)

    def played_estimate(self, now: float) -> int:
        """How much of the reply's audio a client playing it in real time has played."""
        if self.audio_started is None:
            return 0
        return max(0, int(1000 * (now - self.audio_started)))

    def heard_text(self) -> str:
        """What reached the user: with `played_ms`, only the sentences whose audio fits in it."""
        if not self.by_sentence:
            return "".join(text for text, _ in self.delivered)
        heard, elapsed = [], 0
        for text, duration_ms in self.delivered:
            elapsed += duration_ms
            if self.played_ms is not None and elapsed > self.played_ms:
                break
            heard.append(text)
        return join_sentences(heard)


class TurnRunner:
    def __init__(
        self,
        turn: Turn,
        *,
        llm: LLM,
        tts: TTS | None,
        messages: list[ChatMessage],
        emit: Emit,
        emit_now: EmitNow,
    ) -> None:
        self.turn = turn
        self._llm = llm
        self._tts = tts
        self._messages = messages
        self._emit = emit
        self._emit_now = emit_now
        self.reply: list[str] = []
        self.llm_error: LLMError | None = None
        self.outcome = Outcome()  # how the model says the reply ended, and its token count
        self.audio_frames = 0
        self._times: dict[str, float] = {}

    async def run(self) -> None:
        """Stream the reply and its audio; ends with the turn's `metrics` and maybe `bot_msg`."""
        turn = self.turn
        # The opening frames are queued without waiting and the LLM is started in this same
        # step, so a first delta that is ready at once leaves in the writer's same wake-up.
        opening = {"input_type": turn.input_type, **turn.opening}
        turn.metrics.update(opening)
        self._emit_now(protocol.metrics(opening, turn_id=turn.id))
        self._emit_now(protocol.user_msg(turn.user_text, _now_ms(), turn_id=turn.id))
        sentences: asyncio.Queue[str | None] = asyncio.Queue(SENTENCE_QUEUE)
        async with asyncio.TaskGroup() as group:
            if self._tts is not None:
                group.create_task(self._tts_feeder(self._tts, sentences))
            await self._llm_feeder(sentences)
        figures = self.metrics()
        turn.metrics.update(figures)
        await self._send(protocol.metrics(figures, turn_id=turn.id))
        reply = "".join(self.reply)
        if self.audio_frames == 0 and reply:
            await self._send(protocol.bot_msg(reply, _now_ms(), turn_id=turn.id))

    def metrics(self) -> dict[str, Any]:
        t = self._times
        out: dict[str, Any] = {
            "chat_model": self._llm.name,
            "tts": self._tts.name if self._tts else None,
        }
        if "llm_start" in t:
            out["llm_ttft"] = _span(t, "llm_start", "llm_first")
            out["llm_total_time"] = _span(t, "llm_start", "llm_end")
        if self.llm_error is None:
            out["llm_finish_reason"] = self.outcome.finish_reason
        if self.outcome.usage is not None:
            out["llm_usage"] = self.outcome.usage.as_dict()
        if "tts_start" in t:
            out["tts_first_frame_time"] = _span(t, "tts_start", "tts_first")
            out["tts_total_time"] = _span(t, "tts_start", "tts_end")
        if "first_frame" in t:
            out["speak_to_first_frame"] = round(t["first_frame"] - self.turn.started, 4)
        return out

    async def _send(self, frame: protocol.Frame, on_sent: Callable[[], None] | None = None) -> None:
        await self._emit(frame, on_sent)

    async def _llm_feeder(self, sentences: asyncio.Queue[str | None]) -> None:
        turn, times = self.turn, self._times
        splitter = SentenceSplitter()
        speaking = self._tts is not None
        times["llm_start"] = time.perf_counter()
        try:
            async with aclosing(self._llm.stream(self._messages, outcome=self.outcome)) as deltas:
                async for delta in deltas:
                    times.setdefault("llm_first", time.perf_counter())
                    self.reply.append(delta)
                    on_sent = None if speaking else _deliver(turn, delta, 0)
                    await self._send(protocol.bot_delta_chunk(delta, turn_id=turn.id), on_sent)
                    if speaking:
                        for sentence in splitter.feed(delta):
                            await sentences.put(sentence)
            if speaking:
                for sentence in splitter.flush():
                    await sentences.put(sentence)
        except LLMError as exc:
            # Sentences completed before the failure are still spoken; the partial one is not.
            self.llm_error = exc
            await self._send(protocol.error_frame(exc.code, exc.message, turn_id=turn.id))
        finally:
            times["llm_end"] = time.perf_counter()
        if speaking:
            await sentences.put(None)

    async def _tts_feeder(self, tts: TTS, sentences: asyncio.Queue[str | None]) -> None:
        turn, times = self.turn, self._times
        while (sentence := await sentences.get()) is not None:
            times.setdefault("tts_start", time.perf_counter())
            try:
                audio = await tts.synthesize(sentence)
            except TTSError as exc:
                await self._send(
                    protocol.bot_text_chunk(sentence, turn_id=turn.id), _deliver(turn, sentence, 0)
                )
                await self._send(
                    protocol.error_frame(ErrorCode.TTS_ERROR, exc.message, turn_id=turn.id)
                )
                continue
            finally:
                times["tts_end"] = time.perf_counter()
            times.setdefault("tts_first", times["tts_end"])
            await self._send(protocol.bot_text_chunk(sentence, turn_id=turn.id))
            times.setdefault("first_frame", time.perf_counter())
            await self._send(
                protocol.response(
                    audio.to_wav(),
                    sample_rate=audio.sample_rate,
                    duration_ms=audio.duration_ms,
                    turn_id=turn.id,
                ),
                _deliver(turn, sentence, audio.duration_ms),
            )
            self.audio_frames += 1


def _deliver(turn: Turn, text: str, duration_ms: int) -> Callable[[], None]:
    def on_sent() -> None:
        if duration_ms and turn.audio_started is None:
            turn.audio_started = time.perf_counter()
        turn.delivered.append((text, duration_ms))

    return on_sent


def _span(times: dict[str, float], start: str, end: str) -> float | None:
    if start in times and end in times:
        return round(times[end] - times[start], 4)
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)
