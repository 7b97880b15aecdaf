"""Turn-taking in process: the server's turn detection over a scripted VAD, recogniser and
end-of-turn model, a scripted chat model and TTS, a list for an output. No socket, no sleeps:
time is the audio fed (the VAD counts samples), and the tests wait on events.

The recogniser says whatever words the test has put in `ScriptedSTT.words` when it is asked
for a guess; the end-of-turn model gives each text the probability the test chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from live_server.audio.convert import PCM
from live_server.audio.vad import ScorerPool
from live_server.core import events
from live_server.core.session import Session
from live_server.core.turn_end import scoring_prompt
from live_server.core.voice_input import TurnDetection
from live_server.engines import ChatMessage, Engines
from live_server.settings import Settings
from tests.test_session import SETTINGS, FixedTTS, Recorder, ScriptedLLM
from tests.test_session import make_session as session_over
from tests.test_voice_segment import LOUD, QUIET, LoudnessScorer, frames


class ScriptedRecognition:
    def __init__(self, stt: ScriptedSTT, on_partial: Callable[[str], None] | None) -> None:
        self._stt = stt
        self._on_partial = on_partial
        self._fed = 0
        self._guesses: list[tuple[int, asyncio.Future[str]]] = []

    def feed(self, pcm: PCM) -> None:
        self._fed += len(pcm)

    def guess(self, *, urgent: bool) -> None:
        result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        result.set_result(self._stt.words)
        self._guesses.append((self._fed, result))
        told = not urgent or self._stt.partial_at_pause  # Whisper tells its guess at a pause
        if told and self._on_partial is not None and self._stt.words:
            # A partial transcript, told once the guess is done, as a recogniser does.
            on_partial, words = self._on_partial, self._stt.words
            result.add_done_callback(lambda _: on_partial(words))

    def guessed(self, speech_end: int) -> asyncio.Future[str] | None:
        covering = [result for upto, result in self._guesses if upto >= speech_end]
        return covering[-1] if covering else None

    async def finish(self, speech_end: int | None = None) -> str:
        covering = self.guessed(speech_end) if speech_end is not None else None
        return covering.result() if covering is not None else self._stt.words

    def cancel(self) -> None:
        pass


class ScriptedSTT:
    name = "scripted"
    sample_rate = 16000

    def __init__(self) -> None:
        self.words = ""
        self.partial_at_pause = False

    def start(self, on_partial: Callable[[str], None] | None = None) -> ScriptedRecognition:
        return ScriptedRecognition(self, on_partial)

    async def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class ScriptedEnd:
    """The end-of-turn model: the probability the test gave the words (bare of punctuation)."""

    def __init__(self, probabilities: dict[str, float]) -> None:
        self.probabilities = probabilities
        self.asked: list[str] = []

    async def next_tokens(self, prompt: str) -> dict[str, float]:
        words = prompt.removeprefix(scoring_prompt(""))
        self.asked.append(words)
        return {".": self.probabilities[words]}

    async def aclose(self) -> None:
        pass


class SlowEnd(ScriptedEnd):
    """Its verdicts wait until the test sets `judging`."""

    def __init__(self, probabilities: dict[str, float]) -> None:
        super().__init__(probabilities)
        self.judging = asyncio.Event()

    async def next_tokens(self, prompt: str) -> dict[str, float]:
        await self.judging.wait()
        return await super().next_tokens(prompt)


class ReadingLLM(ScriptedLLM):
    """A scripted model that can read a prompt ahead (`ChatPrefill`), as the embedded one."""

    def __init__(self, *deltas: str | None) -> None:
        super().__init__(*deltas)
        self.read: list[list[ChatMessage]] = []

    async def prefill_chat(self, messages: Sequence[ChatMessage]) -> None:
        self.read.append(list(messages))


class SlowReadingLLM(ReadingLLM):
    """Its reading ahead lasts until the test sets `reading`."""

    def __init__(self, *deltas: str | None) -> None:
        super().__init__(*deltas)
        self.reading = asyncio.Event()

    async def prefill_chat(self, messages: Sequence[ChatMessage]) -> None:
        await super().prefill_chat(messages)
        await self.reading.wait()


def make_session(
    llm: ScriptedLLM,
    probabilities: dict[str, float] | ScriptedEnd,
    *,
    speculate: bool = True,
) -> tuple[Session, Recorder, ScriptedSTT]:
    stt = ScriptedSTT()
    engines = Engines(
        llm=llm,
        tts=FixedTTS(),
        stt=stt,
        vad=ScorerPool(LoudnessScorer),
        end_model=probabilities
        if isinstance(probabilities, ScriptedEnd)
        else ScriptedEnd(probabilities),
    )
    detection = replace(TurnDetection.configured(SETTINGS, 16000), speculate=speculate)
    session, output = session_over(llm, engines=engines, detection=detection)
    return session, output, stt


def feed(session: Session, *parts: tuple[int, float]) -> None:
    for data in frames(*parts):
        session.voice.add(data)


async def settle(condition: Callable[[], Any] = lambda: False, turns: int = 200) -> None:
    """Let the loop run until `condition` holds, or for `turns` steps (callbacks, the verdict's
    task): a bounded wait on the loop's own progress, not on the clock."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)


async def test_a_finished_sentence_is_answered_after_a_short_pause():
    llm = ScriptedLLM("Hello Tess. ", "Nice to hear you.")
    session, output, stt = make_session(llm, {"We must find a new home in the stars": 0.6})
    stt.words = "We must find a new home in the stars."
    feed(session, (QUIET, 0.5), (LOUD, 1.5), (QUIET, 0.2))  # the pause is heard, and judged
    await settle(lambda: llm.requests)
    assert output.of(events.TurnStarted) == []  # a reply has started, but nothing is out
    feed(session, (QUIET, 0.2))  # 400 ms of silence: more than the 300 ms it needs
    await output.wait_for(events.Ended)
    (started,) = output.of(events.TurnStarted)
    assert started.user_text == "We must find a new home in the stars."
    assert started.figures["speculation"] == "used"
    assert 300 <= started.figures["end_of_turn_ms"] <= 450
    assert started.figures["end_of_turn_p"] == 0.6
    assert len(llm.requests) == 1  # the speculative reply was the reply
    kinds = [type(e).__name__ for e in output.events]
    assert kinds.index("SpeechStopped") < kinds.index("TurnStarted") < kinds.index("TextDelta")
    assert [e.text for e in output.of(events.Sentence)] == ["Hello Tess.", "Nice to hear you."]
    (ended,) = output.of(events.Ended)
    assert ended.assistant == "Hello Tess. Nice to hear you." and not ended.interrupted
    assert session.speculations == {"used": 1, "dropped": 0}


async def test_a_question_is_answered_without_waiting_for_the_model():
    llm = ScriptedLLM("Eight o'clock.")
    session, output, stt = make_session(llm, {})  # the model knows no words: never asked
    stt.words = "What time is it?"
    feed(session, (QUIET, 0.5), (LOUD, 1.0), (QUIET, 0.5))
    await output.wait_for(events.Ended)
    (started,) = output.of(events.TurnStarted)
    assert started.user_text == "What time is it?"
    assert started.figures["speculation"] == "used"
    assert session.voice._end_model.asked == []


async def test_an_unfinished_sentence_waits_through_its_pause():
    llm = ScriptedLLM("Yes.")
    session, output, stt = make_session(
        llm,
        {
            "And so my fellow Americans": 0.003,
            "And so my fellow Americans, ask what you can do for your country": 0.5,
        },
    )
    stt.words = "And so my fellow Americans."
    feed(session, (LOUD, 1.5), (QUIET, 0.2))
    await settle(lambda: session.voice._verdict is not None)
    feed(session, (QUIET, 1.1))  # 1.3 s of silence: a long pause, not the end
    await settle()
    assert output.of(events.SpeechStopped) == [] and llm.requests == []
    stt.words = "And so my fellow Americans, ask what you can do for your country."
    feed(session, (LOUD, 2.0), (QUIET, 0.5))
    await settle(lambda: session.voice._verdict is not None)
    await settle()
    # Finished words, but the speaker paused 1.3 s inside the turn: as long here is no end.
    assert output.of(events.SpeechStopped) == []
    feed(session, (QUIET, 1.1))
    await output.wait_for(events.Ended)
    (started,) = output.of(events.TurnStarted)
    assert started.user_text == "And so my fellow Americans, ask what you can do for your country."
    assert len(output.of(events.SpeechStarted)) == 1 and len(output.of(events.SpeechStopped)) == 1
    assert started.figures["end_of_turn_patience_ms"] == SETTINGS.turn_patience_ms  # the most


async def test_a_speculative_reply_overtaken_by_more_speech_leaves_nothing_behind():
    llm = ScriptedLLM("Sure, a table. ", None, "Done.")
    session, output, stt = make_session(
        llm,
        {"I would like a table": 0.3, "I would like a table for two at eight tonight": 0.7},
    )
    stt.words = "I would like a table."
    feed(session, (LOUD, 1.0), (QUIET, 0.2))
    await settle(lambda: llm.requests)
    assert llm.requests[0][-1] == {"role": "user", "content": "I would like a table."}
    await settle(lambda: False, 50)  # let it speak its first sentence, held back
    # The speaker goes on before the 300 ms it needed: the reply is dropped, its stream closed.
    feed(session, (QUIET, 0.05))
    stt.words = "I would like a table for two at eight tonight."
    feed(session, (LOUD, 1.0))
    await settle(lambda: llm.closed.is_set())
    assert llm.closed.is_set() and session.speculations["dropped"] == 1
    llm.go.set()
    feed(session, (QUIET, 0.5))
    await output.wait_for(events.Ended)
    # One turn, with id 1, on the whole sentence: nothing of the dropped reply was sent or kept.
    (started,) = output.of(events.TurnStarted)
    assert started.turn_id == 1
    assert started.user_text == "I would like a table for two at eight tonight."
    assert started.figures["speculations_dropped"] == 1
    assert {e.turn_id for e in output.events if hasattr(e, "turn_id")} == {1}
    assert len(output.of(events.SpokenAudio)) == 2  # the final reply's two sentences
    assert [m["content"] for m in llm.requests[-1] if m["role"] == "user"] == [
        "I would like a table for two at eight tonight."
    ]
    assert len(session.conversation) == 1
    (ended,) = output.of(events.Ended)
    assert ended.user_text == "I would like a table for two at eight tonight."


async def test_the_model_reads_the_reply_ahead_while_the_speaker_goes_on():
    """At a partial transcript the chat model reads the reply's prompt ahead: at the pause
    it then reads only the words that are new."""
    llm = ReadingLLM("Sure.")
    session, output, stt = make_session(
        llm, {"I would like a table": 0.01, "I would like a table for two": 0.7}
    )
    stt.words = "I would like a table"
    feed(session, (LOUD, 1.2))  # over a second of speech: a partial transcript
    await settle(lambda: llm.read)
    assert output.of(events.PartialTranscript)[-1].text == "I would like a table"
    assert llm.read[-1][-1] == {"role": "user", "content": "I would like a table"}
    stt.words = "I would like a table for two."
    feed(session, (LOUD, 0.3), (QUIET, 0.5))
    await output.wait_for(events.Ended)
    # The reply's request is the one read ahead, but for the user's final words.
    (request,) = llm.requests
    assert request[:-1] == llm.read[-1][:-1]
    assert request[-1] == {"role": "user", "content": "I would like a table for two."}
    # Nothing is read ahead while a reply runs: its model is busy.
    llm2 = ReadingLLM("One. ", None, "Two.")
    session2, output2, stt2 = make_session(llm2, {"Tell me a story": 0.9})
    session2.say("Go on.")
    await settle(lambda: llm2.requests)
    stt2.words = "Tell me a story"
    feed(session2, (LOUD, 1.2))
    await settle(lambda: output2.of(events.PartialTranscript))
    assert output2.of(events.PartialTranscript) and llm2.read == []
    llm2.go.set()
    await session2.aclose()
    await session.aclose()


@pytest.mark.parametrize(("p_end", "speculated"), [(0.7, True), (0.02, False)])
async def test_the_words_at_a_pause_are_judged_before_they_are_read_ahead(
    p_end: float, speculated: bool
):
    """The recogniser's guess at a pause is also a partial transcript. The model reads it only
    once the pause is judged (the verdict says when the turn ends; the two at once slowed
    each other): in the reply started on it, or read ahead when no reply is started."""
    llm = ReadingLLM("Sure.")
    end = SlowEnd({"I would like a table for two": p_end})
    session, output, stt = make_session(llm, end)
    stt.partial_at_pause = True
    stt.words = "I would like a table for two."
    feed(session, (LOUD, 0.6), (QUIET, 0.2))
    await settle(lambda: output.of(events.PartialTranscript))
    assert output.of(events.PartialTranscript)[-1].text == "I would like a table for two."
    await settle(lambda: llm.read or llm.requests, 50)
    assert llm.read == [] and llm.requests == []  # the verdict is still to come
    end.judging.set()
    await settle(lambda: llm.read or llm.requests)
    said = {"role": "user", "content": "I would like a table for two."}
    if speculated:
        assert llm.read == [] and llm.requests[-1][-1] == said
    else:
        assert llm.requests == [] and llm.read[-1][-1] == said
    await session.aclose()


async def test_a_reply_waits_for_the_model_still_reading_its_prompt_ahead():
    """A reply started while the model still reads its prompt ahead waits for that read: it
    then reads only what is new where the read was kept, rather than the whole prompt again
    beside it, each slowing the other."""
    llm = SlowReadingLLM("Sure.")
    session, output, stt = make_session(llm, {"I would like a table for two": 0.7})
    stt.words = "I would like a table"
    feed(session, (LOUD, 1.2))  # a partial transcript: the read ahead starts, and goes on
    await settle(lambda: llm.read)
    stt.words = "I would like a table for two."
    feed(session, (LOUD, 0.3), (QUIET, 0.5))
    await settle(lambda: output.of(events.TurnStarted))
    await settle(lambda: llm.requests, 50)
    assert llm.requests == []  # the turn has ended and its reply waits for the read
    llm.reading.set()
    await output.wait_for(events.Ended)
    (request,) = llm.requests
    assert request[-1] == {"role": "user", "content": "I would like a table for two."}
    (figures,) = [e.values for e in output.of(events.Metrics) if "llm_ttft" in e.values]
    assert figures["llm_read_ahead_wait"] > 0
    await session.aclose()


async def test_without_speculation_the_reply_starts_when_the_turn_ends():
    llm = ScriptedLLM("Hello.")
    session, output, stt = make_session(llm, {"Good morning": 0.6}, speculate=False)
    stt.words = "Good morning."
    feed(session, (LOUD, 1.0), (QUIET, 0.2))
    await settle(lambda: session.voice._verdict is not None)
    assert llm.requests == []
    feed(session, (QUIET, 0.2))
    await output.wait_for(events.Ended)
    (started,) = output.of(events.TurnStarted)
    assert "speculation" not in started.figures and started.user_text == "Good morning."


async def test_speech_while_the_bot_talks_is_not_a_speculation():
    llm = ScriptedLLM("A long answer. ", "It goes on. ", None, "The end.")
    session, output, stt = make_session(llm, {"mhm": 0.9})
    session.say("tell me")
    await output.wait_for(events.SpokenAudio)
    stt.words = "mhm"
    feed(session, (LOUD, 0.2), (QUIET, 0.5))  # too short to stop the bot
    await settle(lambda: session.voice._verdict is not None)
    assert len(llm.requests) == 1
    llm.go.set()
    await output.wait_for(events.Ended)
    assert len(output.of(events.TurnStarted)) == 1


async def test_a_speaker_cut_off_at_a_pause_is_given_longer_at_the_next():
    """A reader of verse pauses a second at each line's end, after words that read as a
    sentence: the first pause is taken for the end (nothing says otherwise yet), but once they
    went on, the next such pause is waited through."""
    llm = ScriptedLLM("Yes.")
    lines = {
        "That thereby beauty's rose might never die": 0.66,
        "But as the riper should by time decease": 0.66,
    }
    session, output, stt = make_session(llm, lines)
    stt.words = "That thereby beauty's rose might never die."
    feed(session, (LOUD, 1.5), (QUIET, 0.5))
    await output.wait_for(events.TurnStarted)  # cut off after 300 ms of a 1 s pause
    first = output.of(events.TurnStarted)[0].figures
    assert first["end_of_turn_ms"] < 500 and "end_of_turn_patience_ms" not in first
    stt.words = "But as the riper should by time decease."
    feed(session, (QUIET, 0.5), (LOUD, 1.5), (QUIET, 1.0))  # on after the pause, over the bot
    await settle(lambda: session.voice._verdict is not None)
    await settle()
    assert len(output.of(events.SpeechStopped)) == 1  # this line's 1 s pause is waited through
    feed(session, (QUIET, 0.6))
    await output.wait_for(events.TurnStarted, 2)
    second = output.of(events.TurnStarted)[-1]
    assert second.user_text == "But as the riper should by time decease."
    assert 1300 <= second.figures["end_of_turn_patience_ms"] <= 1500
    assert second.figures["end_of_turn_ms"] >= second.figures["end_of_turn_patience_ms"]


async def test_a_speaker_who_heard_the_reply_out_was_not_cut_off_though_no_audio_came():
    """A client may send no audio while the bot's reply plays (a device without echo
    cancellation): its next turn starts a moment after the last in the audio, but seconds
    later on the clock, after a whole reply. That speaker was not cut off, and their next
    finished sentence is answered as soon as the first."""
    llm = ScriptedLLM("Yes.")
    lines = {
        "We must find a new home in the stars": 0.6,
        "He might even have been made amiable himself": 0.6,
    }
    session, output, stt = make_session(llm, lines)
    now = [1000.0]
    session.voice.clock = lambda: now[0]
    stt.words = "We must find a new home in the stars."
    feed(session, (LOUD, 1.5), (QUIET, 0.4))
    await output.wait_for(events.Ended)
    now[0] += 4.0  # the reply heard out, and a thought: no audio meanwhile
    stt.words = "He might even have been made amiable himself."
    feed(session, (QUIET, 0.3), (LOUD, 1.5), (QUIET, 0.2))
    await settle(lambda: session.voice._verdict is not None)
    feed(session, (QUIET, 1.8))
    await output.wait_for(events.Ended, 2)
    first, second = (e.figures for e in output.of(events.TurnStarted))
    assert "end_of_turn_patience_ms" not in first
    assert "end_of_turn_patience_ms" not in second and second["end_of_turn_ms"] < 450


async def test_a_speaker_who_paused_long_inside_the_turn_is_given_as_long_at_its_end():
    """The sonnet read slowly: a second's pause at the first line's end, after words that read
    as unfinished, is waited through; the speaker goes on, and the same pause after the second
    line, whose words read as a sentence, is waited through as well. The next turn starts
    afresh."""
    llm = ScriptedLLM("Yes.")
    lines = {
        "From fairest creatures we desire increase": 0.046,
        "From fairest creatures we desire increase, that thereby beauty's rose might never die": (
            0.66
        ),
        "Thank you": 0.7,
    }
    session, output, stt = make_session(llm, lines)
    stt.words = "From fairest creatures we desire increase."
    feed(session, (LOUD, 1.5), (QUIET, 1.0))
    await settle(lambda: session.voice._verdict is not None)
    assert output.of(events.SpeechStopped) == []  # unfinished: a second is not its end
    stt.words = (
        "From fairest creatures we desire increase, that thereby beauty's rose might never die."
    )
    feed(session, (LOUD, 1.5), (QUIET, 1.0))
    await settle(lambda: session.voice._verdict is not None)
    await settle()
    assert output.of(events.SpeechStopped) == []  # finished words, but as long a pause
    feed(session, (QUIET, 0.5))
    await output.wait_for(events.TurnStarted)
    (first,) = output.of(events.TurnStarted)
    assert first.user_text == stt.words
    assert 1250 <= first.figures["end_of_turn_patience_ms"] <= 1350
    assert first.figures["end_of_turn_ms"] >= first.figures["end_of_turn_patience_ms"]
    await output.wait_for(events.Ended)
    # The next turn has paused nowhere: finished words are answered after the short pause.
    stt.words = "Thank you."
    feed(session, (QUIET, 3.0), (LOUD, 1.0), (QUIET, 0.5))
    await output.wait_for(events.TurnStarted, 2)
    second = output.of(events.TurnStarted)[-1].figures
    assert "end_of_turn_patience_ms" not in second and second["end_of_turn_ms"] < 500


async def test_a_reply_to_words_that_must_wait_long_starts_shortly_before_the_wait_ends():
    """A speaker given longer often goes on: the reply to words that wait 1.3 s is not started
    at the pause, where it would take the CPU for a second, but 700 ms before the wait is over;
    one who goes on before then leaves no reply to drop."""
    llm = ScriptedLLM("Yes.")
    lines = {"Good morning": 0.02, "Good morning to you": 0.7, "Good morning to you and yours": 0.7}
    session, output, stt = make_session(llm, lines)
    stt.words = "Good morning."
    feed(session, (LOUD, 1.0), (QUIET, 1.0))  # a second's pause after unfinished words
    stt.words = "Good morning to you."
    feed(session, (LOUD, 1.0), (QUIET, 0.4))  # finished words: now they wait 1.3 s
    await settle(lambda: session.voice._verdict is not None)
    await settle()
    assert llm.requests == []
    stt.words = "Good morning to you and yours."
    feed(session, (LOUD, 1.0), (QUIET, 0.4))  # on before the reply started: nothing to drop
    await settle(lambda: session.voice._verdict is not None)
    await settle()
    assert llm.requests == [] and session.speculations["dropped"] == 0
    feed(session, (QUIET, 0.3))  # 700 ms into the pause: within 700 ms of its 1.3 s
    await settle(lambda: llm.requests)
    assert llm.requests and output.of(events.TurnStarted) == []  # started, held back
    feed(session, (QUIET, 0.7))
    await output.wait_for(events.Ended)
    (started,) = output.of(events.TurnStarted)
    assert started.user_text == "Good morning to you and yours."
    assert started.figures["speculation"] == "used" and len(llm.requests) == 1


async def test_a_short_pause_inside_the_turn_leaves_its_end_as_it_was():
    llm = ScriptedLLM("Yes.")
    session, output, stt = make_session(llm, {"Good morning": 0.01, "Good morning to you": 0.7})
    stt.words = "Good morning."
    feed(session, (LOUD, 1.0), (QUIET, 0.25), (LOUD, 1.0))  # under the 300 ms finished words need
    stt.words = "Good morning to you."
    feed(session, (QUIET, 0.5))
    await output.wait_for(events.TurnStarted)
    (started,) = output.of(events.TurnStarted)
    assert "end_of_turn_patience_ms" not in started.figures
    assert started.figures["end_of_turn_ms"] < 500


def test_a_missing_end_of_turn_model_stops_the_start_with_the_settings_named(tmp_path):
    from live_server.engines import build_end_model
    from live_server.errors import ConfigError

    settings = Settings(data_dir=tmp_path, llm="echo", local_model=tmp_path / "none.gguf")
    with pytest.raises(ConfigError) as refused:
        build_end_model(settings, ScriptedLLM())  # type: ignore[arg-type]
    assert "LIVE_TURN_POLICY" in str(refused.value) and "LIVE_LOCAL_MODEL" in str(refused.value)
    text_only = Settings(data_dir=tmp_path, local_model=tmp_path / "none.gguf", turn_policy="text")
    assert build_end_model(text_only, ScriptedLLM()) is None  # type: ignore[arg-type]
