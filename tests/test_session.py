"""The session logic in process: scripted engines, a list for an output, no socket, no sleeps.

The engines here are fakes injected through the provider protocols; what the tests follow is
the order of the session's events, what is kept of each reply, and what the model is asked.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from live_server.audio.convert import Audio
from live_server.core import events
from live_server.core.conversation import ConversationFeed
from live_server.core.output import Droppable
from live_server.core.session import Session
from live_server.core.session_options import SessionOptions
from live_server.core.turn import SPEAKING_TIME_S, Turn
from live_server.core.turn_state import TurnState
from live_server.core.voice_input import TurnDetection
from live_server.engines import ChatMessage, Engines, Outcome, Sampling
from live_server.errors import ErrorCode, ProtocolError
from live_server.settings import Settings


class ScriptedLLM:
    """Replies with the given deltas; a delta of None waits for `go` before going on."""

    name = "scripted"

    def __init__(self, *deltas: str | None) -> None:
        self.deltas = deltas
        self.go = asyncio.Event()
        self.requests: list[list[ChatMessage]] = []
        self.closed = asyncio.Event()

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncGenerator[str, None]:
        self.requests.append(list(messages))
        try:
            for delta in self.deltas:
                if delta is None:
                    await self.go.wait()
                else:
                    yield delta
        finally:
            self.closed.set()

    async def aclose(self) -> None:
        pass


class FixedTTS:
    """Every sentence is 100 ms of a tone per word."""

    name = "fixed"

    def __init__(self) -> None:
        self.said: list[str] = []  # what the voice was asked to say
        self.asked: list[tuple[float, float | None]] = []  # when, and when it was due

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        self.said.append(text)
        self.asked.append((time.perf_counter(), due))
        samples = 1600 * len(text.split())
        tone = (3000 * np.sin(np.arange(samples) / 5)).astype(np.int16)
        return Audio(tone, 16000)

    async def aclose(self) -> None:
        pass


class Recorder:
    """The session's `Output`: events in the order the session sent them, as a connection
    would write them (an interrupted turn's events are dropped, `on_sent` runs on sending)."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self._changed = asyncio.Event()
        self._gates: list[asyncio.Task[None]] = []
        self._last_gate: asyncio.Task[None] | None = None

    def _put(self, event: events.Event, turn: Droppable | None, on_sent: Any) -> None:
        if turn is not None and turn.interrupted:
            return
        self.events.append(event)
        if on_sent is not None:
            on_sent()
        self._changed.set()

    async def send(self, event: events.Event, *, turn: Any = None, on_sent: Any = None) -> None:
        self._put(event, turn, on_sent)

    def send_now(self, event: events.Event, *, turn: Any = None, on_sent: Any = None) -> None:
        self._put(event, turn, on_sent)

    def send_when(self, event: events.Event, ready: Awaitable[events.Event | None]) -> None:
        before = self._last_gate

        async def gated() -> None:
            if before is not None:
                await before
            first = await ready
            if first is not None:
                self._put(first, None, None)
            self._put(event, None, None)

        self._last_gate = asyncio.create_task(gated())

    def discard_stale(self) -> None:
        pass

    async def wait_for(self, kind: type, count: int = 1) -> list[events.Event]:
        async with asyncio.timeout(10):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


SETTINGS = Settings(data_dir=Path("/nonexistent"), system_prompt="Be kind.")


def make_session(
    llm: ScriptedLLM,
    *,
    speak: bool = True,
    engines: Engines | None = None,
    detection: TurnDetection | None = None,
) -> tuple[Session, Recorder]:
    """A session over `engines` (by default `llm`, and a TTS when `speak`), with no store."""
    output = Recorder()
    session = Session(
        username="tess",
        settings=SETTINGS,
        engines=engines or Engines(llm=llm, tts=FixedTTS() if speak else None),
        store=None,  # type: ignore[arg-type]  # no live conversation: nothing is stored
        feed=ConversationFeed(),
        live=None,
        output=output,
        options=SessionOptions(detection=detection),
    )
    return session, output


def kinds(output: Recorder) -> list[str]:
    return [type(e).__name__ for e in output.events]


async def test_a_text_turn_streams_then_ends_once():
    llm = ScriptedLLM("Hello there. ", "How are ", "you?")
    session, output = make_session(llm)
    session.say("hi")
    assert session.replying and session.turn is not None
    assert session.turn.state is TurnState.WAITING  # its task has not run yet
    await output.wait_for(events.Ended)
    assert kinds(output)[0] == "TurnStarted" and kinds(output).count("Ended") == 1
    said = [e.text for e in output.of(events.Sentence)]
    assert said == ["Hello there.", "How are you?"]
    assert [e.text for e in output.of(events.SpokenAudio)] == said
    (ended,) = output.of(events.Ended)
    assert ended.assistant == "Hello there. How are you?" and not ended.interrupted
    assert session.turn is None and not session.replying
    assert llm.requests[0] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
    ]


async def test_a_later_sentence_is_due_when_the_audio_before_it_runs_out():
    """The voice is told when each sentence is needed: the first at once, the next when the
    first's audio (200 ms) has played out on the client, less the time to speak it, so that a
    voice serving several conversations speaks first what is needed first."""
    llm = ScriptedLLM("Hello there. ", "How are you?")
    tts = FixedTTS()
    session, output = make_session(llm, engines=Engines(llm=llm, tts=tts))
    session.say("hi")
    await output.wait_for(events.Ended)
    (first_at, first_due), (second_at, second_due) = tts.asked
    assert first_due is None
    # The first audio went out between the two requests: it runs out 200 ms after that.
    assert second_due is not None
    assert first_at + 0.2 - SPEAKING_TIME_S <= second_due <= second_at + 0.2 - SPEAKING_TIME_S


async def test_an_interrupt_keeps_what_was_played_and_closes_the_stream():
    llm = ScriptedLLM("One two. ", "Three four. ", "Five", None, " never said.")
    session, output = make_session(llm)
    session.say("count")
    await output.wait_for(events.SpokenAudio, 2)
    session.interrupt(played_ms=250)  # the first sentence is 200 ms, the second 200 more
    await output.wait_for(events.Ended)
    assert kinds(output)[-2:] == ["Stopped", "Ended"]
    (ended,) = output.of(events.Ended)
    assert ended.interrupted and ended.assistant == "One two."
    assert llm.closed.is_set()
    # The next turn's model request holds only what was heard, marked as cut.
    llm.go.set()
    session.say("go on")
    await output.wait_for(events.Ended, 2)
    assert llm.requests[-1][-2] == {
        "role": "assistant",
        "content": "One two. [interrupted by the user]",
    }


async def test_what_was_heard_of_a_markdown_reply_is_kept_in_the_models_words():
    # Said: "Paris is big." (300 ms of FixedTTS), then "It has two million one hundred thousand
    # people." (800 ms): what was heard is counted in the display sentences.
    llm = ScriptedLLM("**Paris** is big. ", "It has `2,100,000` people. ", "Also", None, " more.")
    tts = FixedTTS()
    session, output = make_session(llm, engines=Engines(llm=llm, tts=tts))
    session.say("tell me")
    await output.wait_for(events.SpokenAudio, 2)
    session.interrupt(played_ms=1150)
    await output.wait_for(events.Ended)
    (ended,) = output.of(events.Ended)
    assert ended.interrupted
    assert ended.assistant == "**Paris** is big. It has `2,100,000` people."
    assert tts.said[:2] == ["Paris is big.", "It has two million one hundred thousand people."]


async def test_a_second_turn_while_one_runs_is_refused():
    llm = ScriptedLLM("Wait", None)
    session, output = make_session(llm)
    session.say("first")
    with pytest.raises(ProtocolError) as refused:
        session.say("second")
    assert refused.value.code is ErrorCode.PROCESSING_ERROR
    llm.go.set()
    await output.wait_for(events.Ended)


async def test_inputs_wait_for_respond():
    llm = ScriptedLLM("Fine.")
    session, output = make_session(llm, speak=False)
    with pytest.raises(ProtocolError):
        session.respond()
    session.add_text("one")
    session.add_text("two")
    assert output.of(events.TurnStarted) == []
    session.respond()
    await output.wait_for(events.Ended)
    assert [e.text for e in output.of(events.InputAdded)] == ["one", "two"]
    assert llm.requests[0][-1] == {"role": "user", "content": "one\ntwo"}
    (ended,) = output.of(events.Ended)
    assert ended.assistant == "Fine." and output.of(events.TextDelta)[0].text == "Fine."


async def test_cutting_an_ended_reply_changes_the_history():
    llm = ScriptedLLM("Alpha beta. ", "Gamma delta.")
    session, output = make_session(llm)
    session.configure(replace(session.options, cuttable_turns=2))
    session.say("letters")
    await output.wait_for(events.Ended)
    turn_id = output.of(events.Ended)[0].turn_id
    session.cut(turn_id, played_ms=210)
    (truncated,) = output.of(events.Truncated)
    assert truncated.assistant == "Alpha beta."
    session.say("more")
    await output.wait_for(events.Ended, 2)
    assert llm.requests[-1][-2]["content"] == "Alpha beta. [interrupted by the user]"
    with pytest.raises(ProtocolError):
        session.cut(999, 10)


async def test_only_the_latest_replies_can_be_cut():
    session, output = make_session(ScriptedLLM("Alpha beta. ", "Gamma delta."))
    session.configure(replace(session.options, cuttable_turns=2))
    for n in range(1, 4):
        session.say(f"turn {n}")
        await output.wait_for(events.Ended, n)
    first, _, last = (e.turn_id for e in output.of(events.Ended))
    with pytest.raises(ProtocolError) as refused:
        session.cut(first, 100)
    assert refused.value.code == ErrorCode.NOT_FOUND
    session.cut(last, 100)
    assert output.of(events.Truncated)[-1].turn_id == last


async def test_a_long_conversation_holds_no_old_turns():
    """Each turn's task, timings and delivered text go once it is over: a socket that has had
    many turns holds no more than one that has had a few (only the last reply, which the client
    may still be playing)."""

    def turns_alive() -> int:
        gc.collect()
        return sum(isinstance(o, Turn) for o in gc.get_objects())

    before = turns_alive()  # any other test's still around
    session, output = make_session(ScriptedLLM("Alpha beta. ", "Gamma delta."))
    for n in range(1, 21):
        session.say(f"turn {n}")
        await output.wait_for(events.Ended, n)
    await session.history.drain()
    assert turns_alive() - before <= 1


async def test_a_model_failure_keeps_what_was_delivered():
    class Failing(ScriptedLLM):
        async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[str, None]:
            from live_server.errors import LLMError

            yield "Half a thought. "
            yield "And then"
            raise LLMError("the model broke")

    session, output = make_session(Failing(), speak=True)
    session.say("think")
    await output.wait_for(events.Ended)
    (failed,) = output.of(events.Failed)
    assert failed.code is ErrorCode.LLM_ERROR
    (ended,) = output.of(events.Ended)
    # The sentence completed before the failure was spoken and is kept; the partial one is not.
    assert ended.failed and ended.assistant == "Half a thought."


async def test_closing_mid_turn_stops_everything():
    llm = ScriptedLLM("Start. ", None)
    session, output = make_session(llm)
    session.say("hold")
    await output.wait_for(events.TextDelta)
    await session.aclose()
    assert session.closed
    assert llm.closed.is_set()
    assert session.turn is not None and session.turn.task is not None
    assert session.turn.task.done()
    assert session.turn.state is TurnState.STOPPED  # kept as interrupted, with what it got


async def test_the_voice_says_the_reply_without_markup_and_the_text_keeps_it():
    llm = ScriptedLLM(
        "**Paris** is the capital of France. It costs $5.99 to see",
        " https://en.wikipedia.org/wiki/Paris today.\n```python\nprint(1)\n```\nDone.",
    )
    tts = FixedTTS()
    session, output = make_session(llm, engines=Engines(llm=llm, tts=tts))
    session.say("tell me")
    await output.wait_for(events.Ended)
    shown = [e.text for e in output.of(events.Sentence)]
    assert "**Paris** is the capital of France." in shown  # the text frames keep the markdown
    assert "print(1)" in "".join(shown)
    assert tts.said == [
        "Paris is the capital of France.",
        "It costs five dollars and ninety-nine cents to see en dot wikipedia dot org today.",
        "Done.",
    ]
    spoken = [e.text for e in output.of(events.SpokenAudio)]
    assert len(spoken) == 3 and spoken[0] == "**Paris** is the capital of France."
    (ended,) = output.of(events.Ended)
    assert ended.assistant.startswith("**Paris** is the capital of France.")


async def test_replies_are_read_by_the_rules_of_the_servers_language():
    llm = ScriptedLLM("Es kostet **5,99 €** bis 15:30. ", "Bis *morgen*!")
    tts = FixedTTS()
    session, output = make_session(llm, engines=Engines(llm=llm, tts=tts, language="de"))
    session.say("was kostet das")
    await output.wait_for(events.Ended)
    # No English number words in a German reply: its numbers are left to a German voice.
    assert tts.said == ["Es kostet 5,99 € bis 15:30.", "Bis morgen!"]
