"""One turn of a live conversation: LLM deltas -> sentence splitter -> TTS, as events.

The LLM feeder and the TTS feeder run as two tasks joined by a bounded sentence queue, so audio
for the first sentence goes out while the model is still writing later ones. Every event goes
to the connection tagged with its turn, so an interrupted turn's frames are dropped before they
reach the socket. Cancelling `run()` cancels both feeders and closes the provider streams; the
turn's end is not sent here but by the session, which owns the turn's life cycle. The runner
knows nothing of any wire format: a codec turns its events into frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from live_server.core import events
from live_server.core.conversation import Exchange, join_sentences
from live_server.core.events import InputType
from live_server.core.output import OnSent
from live_server.core.reply import ModelReply
from live_server.core.speech_text import SpeechText
from live_server.core.splitter import SentenceSplitter
from live_server.core.turn_state import INTERRUPTED, TERMINAL, TurnEvent, TurnState, next_state
from live_server.engines import LLM, TTS, ChatMessage, Reasoning
from live_server.errors import ErrorCode, LiveError, TTSError
from live_server.storage import SavedTurn

if TYPE_CHECKING:
    from live_server.core.speculation import Speculation

Send = Callable[[events.Event, "OnSent | None"], Awaitable[None]]
SendNow = Callable[[events.Event], None]
# The most of a turn's audio a client may say it played (`played_ms`, Realtime's `audio_end_ms`).
MAX_PLAYED_MS = 24 * 3600 * 1000
SENTENCE_QUEUE = 16
# A sentence is wanted this long before the audio before it runs out on the client: time for
# the voice to speak it (Piper: 50-300 ms a sentence on a busy core).
SPEAKING_TIME_S = 0.5


@dataclass(eq=False)
class Turn:
    """One turn's data. Its state moves only through `move` (`turn_state.TRANSITIONS`), and
    how much of its reply was heard only through `interrupt` and `hear`."""

    id: int
    user_text: str
    input_type: InputType
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)  # wall clock, for the saved message
    state: TurnState = TurnState.WAITING
    task: asyncio.Task[None] | None = None
    # An interrupted turn still finishing: this one starts, and ends, only after it.
    after: Turn | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Extra fields for the opening `metrics` (voice turns: the STT figures).
    opening: dict[str, Any] = field(default_factory=dict)
    # Text whose frames have reached the socket, with its audio's length in ms: sentences whose
    # audio was sent, or deltas when there is no TTS. This, not the full reply, is what an
    # interrupted turn keeps.
    delivered: list[tuple[str, int]] = field(default_factory=list)
    by_sentence: bool = True  # False when there is no TTS: `delivered` then holds deltas
    # How much of the turn's audio the client says it played (`interrupt`, `hear`).
    played_ms: int | None = None
    # The figures of the turn's metrics, kept with the saved reply.
    metrics: dict[str, Any] = field(default_factory=dict)
    # When the first audio of the reply reached the socket (perf_counter), for estimating what
    # a client that sends no `played_ms` has played.
    audio_started: float | None = None
    # Saving the turn: its stored ids, or why it could not be saved.
    save_task: asyncio.Task[SavedTurn | LiveError] | None = None
    exchange: Exchange | None = None  # as kept in the history, once the turn is over
    # What the user's text is made of before the turn starts: typed text, and speech still
    # being recognised (`session.Recognising`).
    sources: list[Any] = field(default_factory=list)
    # A reply started on a guess at the end of the speech, which this turn took over: it is
    # used if the final words are the guess's (`speculation`).
    speculation: Speculation | None = None

    @property
    def interrupted(self) -> bool:
        """Stopped by the client (or its leaving): its frames are no longer sent."""
        return self.state in INTERRUPTED

    def move(self, event: TurnEvent) -> None:
        """The one way a turn changes state; `IllegalTransition` when its state forbids it."""
        self.state = next_state(self.state, event)
        if self.state in TERMINAL:
            self.finished.set()

    def interrupt(self, played_ms: int | None) -> None:
        """Stop the turn: from now on its frames are dropped. `played_ms`: how much of its
        audio the client played, if it says."""
        self.move(TurnEvent.INTERRUPT)
        self.played_ms = played_ms
        if played_ms is not None:
            self.metrics["played_ms"] = played_ms

    def hear(self, played_ms: int) -> None:
        """The client played only `played_ms` of the reply's audio (after an interrupt, or
        after the turn's end): what is kept of it is what fits (`heard_text`)."""
        self.move(TurnEvent.HEAR)
        self.played_ms = played_ms

    def audio_ms(self) -> int:
        """The length of the reply's audio that reached the client."""
        return sum(ms for _, ms in self.delivered)

    def audio_runs_out(self) -> float | None:
        """When a client playing the reply's audio in real time comes to the end of what it was
        sent (`time.perf_counter`); None before any reached it."""
        if self.audio_started is None:
            return None
        return self.audio_started + self.audio_ms() / 1000

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
        send: Send,
        send_now: SendNow,
        show_reasoning: bool = False,
        language: str | None = None,
        read_ahead: asyncio.Future[None] | None = None,
    ) -> None:
        self.turn = turn
        # The model still reading this reply's prompt ahead (`Turns.read_ahead`): the reply
        # waits for it, and so reads only what is new where it was read, rather than all of it
        # again beside it, each slowing the other.
        self._read_ahead = read_ahead
        self._show_reasoning = show_reasoning
        self._language = language
        self._tts = tts
        self._messages = messages
        self._send = send
        self._send_now = send_now
        self.reply = ModelReply(llm)
        self.audio_frames = 0
        self._times: dict[str, float] = {}

    async def run(self) -> None:
        """Stream the reply and its audio; ends with the turn's metrics and maybe its text."""
        turn = self.turn
        # The opening events are queued without waiting and the LLM is started in this same
        # step, so a first delta that is ready at once leaves in the writer's same wake-up.
        opening = {"input_type": turn.input_type, **turn.opening}
        turn.metrics.update(opening)
        self._send_now(events.TurnStarted(turn.id, turn.input_type, turn.user_text, opening))
        sentences: asyncio.Queue[str | None] = asyncio.Queue(SENTENCE_QUEUE)
        async with asyncio.TaskGroup() as group:
            if self._tts is not None:
                group.create_task(self._tts_feeder(self._tts, sentences))
            await self._llm_feeder(sentences)
        figures = self.metrics()
        turn.metrics.update(figures)
        await self._send(events.Metrics(turn.id, figures), None)
        reply = self.reply.text
        if self.audio_frames == 0 and reply:
            await self._send(events.ReplyText(turn.id, reply), None)

    def metrics(self) -> dict[str, Any]:
        t, reply = self._times, self.reply
        out: dict[str, Any] = {
            "chat_model": reply.llm.name,
            "tts": self._tts.name if self._tts else None,
        }
        if reply.started is not None:
            out["llm_ttft"] = reply.time_to_first()
            out["llm_total_time"] = reply.total_time()
        if not reply.failed:
            out["llm_finish_reason"] = reply.outcome.finish_reason
        if (usage := reply.usage()) is not None:
            out["llm_usage"] = usage
        if reply.reasoning_parts:  # kept out of the answer, the voice and the history
            out["llm_reasoning_time"] = reply.reasoning_time()
            out["llm_reasoning_chars"] = len(reply.reasoning)
        if "read_ahead_wait" in t:
            out["llm_read_ahead_wait"] = round(t["read_ahead_wait"], 4)
        if "tts_start" in t:
            out["tts_first_frame_time"] = _span(t, "tts_start", "tts_first")
            out["tts_total_time"] = _span(t, "tts_start", "tts_end")
        if "first_frame" in t:
            out["speak_to_first_frame"] = round(t["first_frame"] - self.turn.started, 4)
        return out

    async def _llm_feeder(self, sentences: asyncio.Queue[str | None]) -> None:
        turn = self.turn
        splitter = SentenceSplitter()
        speaking = self._tts is not None
        if self._read_ahead is not None and not self._read_ahead.done():
            began = time.perf_counter()
            await asyncio.wait({self._read_ahead})  # its failure is its own: only time is lost
            self._times["read_ahead_wait"] = time.perf_counter() - began
        stream = self.reply.stream(self._messages, reasoning=self._show_reasoning)
        async with aclosing(stream) as deltas:
            async for delta in deltas:
                if isinstance(delta, Reasoning):  # shown to a client that asked, never spoken
                    await self._send(events.ReasoningDelta(turn.id, delta), None)
                    continue
                on_sent = None if speaking else _deliver(turn, delta, 0)
                await self._send(events.TextDelta(turn.id, delta), on_sent)
                if speaking:
                    for sentence in splitter.feed(delta):
                        await sentences.put(sentence)
        if (error := self.reply.error) is not None:
            # Sentences completed before the failure are still spoken; the partial one is not.
            await self._send(events.Failed(error.code, error.message, turn.id), None)
        elif speaking:
            for sentence in splitter.flush():
                await sentences.put(sentence)
        if speaking:
            await sentences.put(None)

    async def _tts_feeder(self, tts: TTS, sentences: asyncio.Queue[str | None]) -> None:
        """Each sentence's display text goes out as it is; the voice says `speech_text`'s
        version of it (no markup, numbers in words), and nothing for what has none."""
        turn, times = self.turn, self._times
        speech = SpeechText(self._language)
        while (chunk := await sentences.get()) is not None:
            spoken = speech.say(chunk)
            sentence = str(chunk)  # as displayed and stored: a plain str, not the splitter's kind
            if not spoken:  # a code block's line, a table's rule, an emoji alone
                await self._send(events.Sentence(turn.id, sentence), _deliver(turn, sentence, 0))
                continue
            times.setdefault("tts_start", time.perf_counter())
            # Needed when the audio before it runs out, less the time to speak it: an engine
            # serving several conversations speaks first what is needed first.
            runs_out = turn.audio_runs_out()
            due = None if runs_out is None else runs_out - SPEAKING_TIME_S
            try:
                audio = await tts.synthesize(spoken, due=due)
            except TTSError as exc:
                await self._send(events.Sentence(turn.id, sentence), _deliver(turn, sentence, 0))
                await self._send(events.Failed(ErrorCode.TTS_ERROR, exc.message, turn.id), None)
                continue
            finally:
                times["tts_end"] = time.perf_counter()
            times.setdefault("tts_first", times["tts_end"])
            await self._send(events.Sentence(turn.id, sentence), None)
            times.setdefault("first_frame", time.perf_counter())
            await self._send(
                events.SpokenAudio(turn.id, sentence, audio),
                _deliver(turn, sentence, audio.duration_ms),
            )
            self.audio_frames += 1


def _deliver(turn: Turn, text: str, duration_ms: int) -> OnSent:
    def on_sent() -> None:
        if duration_ms and turn.audio_started is None:
            turn.audio_started = time.perf_counter()
        turn.delivered.append((text, duration_ms))

    return on_sent


def _span(times: dict[str, float], start: str, end: str) -> float | None:
    if start in times and end in times:
        return round(times[end] - times[start], 4)
    return None
