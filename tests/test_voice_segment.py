"""Speculative recognition, in process and deterministic: a VoiceSegment over a scripted VAD and
a recording recogniser, and Whisper's recognition over a scripted decoder."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from live_server.audio.convert import PCM
from live_server.audio.vad import Event, ScorerPool
from live_server.core.voice_segment import PREROLL, VoiceSegment
from live_server.engines.stt.whisper import WhisperRecognition

LOUD, QUIET = 8000, 0


class LoudnessScorer:
    """Speech wherever the audio is loud: a VAD whose answers the test decides."""

    def score(self, window: np.ndarray[Any, Any]) -> float:
        return 0.9 if float(np.abs(window).mean()) > 0.1 else 0.0

    def reset(self) -> None:
        pass


class Recorder:
    """A recogniser that records what it is told."""

    sample_rate = 16000
    name = "recorder"

    def __init__(self) -> None:
        self.fed = 0
        self.guesses: list[tuple[int, bool]] = []  # (samples fed at the guess, urgent)
        self.finished_with: int | None = None
        self.cancelled = False

    def start(self, on_partial: Callable[[str], None] | None = None) -> Recorder:
        return self

    def feed(self, pcm: PCM) -> None:
        self.fed += len(pcm)

    def guess(self, *, urgent: bool) -> None:
        self.guesses.append((self.fed, urgent))

    async def finish(self, speech_end: int | None = None) -> str:
        self.finished_with = speech_end
        return "words"

    def cancel(self) -> None:
        self.cancelled = True

    async def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def frames(*parts: tuple[int, float]) -> list[str]:
    """(level, seconds) blocks as 100 ms speaking_part payloads at 16 kHz."""
    audio = np.concatenate([np.full(int(s * 16000), level, np.int16) for level, s in parts])
    return [
        base64.b64encode(audio[i : i + 1600].tobytes()).decode() for i in range(0, len(audio), 1600)
    ]


def segment(stt: Recorder, *, listening: bool = False) -> VoiceSegment:
    return VoiceSegment(
        "s",
        sample_rate=16000,
        stt=stt,  # type: ignore[arg-type]
        scorers=ScorerPool(LoudnessScorer),
        max_seconds=60,
        listening=listening,
    )


async def test_a_pause_asks_for_an_urgent_guess_and_the_end_reuses_it() -> None:
    stt = Recorder()
    voice = segment(stt)
    events = [
        e for data in frames((QUIET, 0.3), (LOUD, 0.8), (QUIET, 0.5)) for e in voice.add(data)
    ]
    assert events == [Event.SPEECH_STARTED, Event.PAUSED]
    [(fed, urgent)] = stt.guesses
    assert urgent and fed <= 16000 * 1.3  # asked at the pause, not at the end
    voice.close()
    assert await voice.transcript() == "words"
    # The recogniser is told where the speech ended, on its own sample count.
    assert stt.finished_with is not None and 16000 * 1.1 - 512 <= stt.finished_with <= fed


async def test_long_speech_asks_for_a_partial_about_once_a_second() -> None:
    stt = Recorder()
    voice = segment(stt)
    for data in frames((LOUD, 3.5)):
        voice.add(data)
    assert [urgent for _, urgent in stt.guesses] == [False, False, False]
    gaps = np.diff([0] + [fed for fed, _ in stt.guesses])
    assert all(15000 <= gap <= 17700 for gap in gaps), gaps


async def test_no_speech_means_no_recognition_at_all() -> None:
    stt = Recorder()
    voice = segment(stt)
    for data in frames((QUIET, 2.0)):
        voice.add(data)
    assert await voice.transcript() == ""
    assert stt.finished_with is None and stt.cancelled and stt.guesses == []


async def test_listening_keeps_only_a_short_preroll_before_the_speech() -> None:
    stt = Recorder()
    voice = segment(stt, listening=True)
    for data in frames((QUIET, 30.0)):  # half a minute of nothing: not held, not counted
        voice.add(data)
    assert voice.recognition is None
    for data in frames((LOUD, 0.5)):
        voice.add(data)
    assert voice.recognition is stt
    # The recogniser got the pre-roll (at most 300 ms and a frame) and the speech since.
    assert 16000 * 0.5 <= stt.fed <= 16000 * 0.5 + PREROLL + 1600


class ScriptedDecoder:
    """Stands in for WhisperSTT's workers: each decode is a future the test completes."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, asyncio.Future[str]]] = []

    def decode(self, pcm: PCM, *, urgent: bool, before: str = "") -> asyncio.Future[str]:
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.jobs.append((len(pcm), job))
        return job


async def test_whisper_finish_uses_the_guess_that_covers_the_speech() -> None:
    decoder, partials = ScriptedDecoder(), []
    recognition = WhisperRecognition(decoder, partials.append)  # type: ignore[arg-type]
    recognition.feed(np.zeros(16000, np.int16))
    recognition.guess(urgent=True)
    decoder.jobs[0][1].set_result("we must find")
    await asyncio.sleep(0)  # the result's callback
    assert partials == ["we must find"]
    assert await recognition.finish(speech_end=12000) == "we must find"
    assert len(decoder.jobs) == 1, "no second decode"


@pytest.mark.parametrize("speech_end", [20000, None])
async def test_whisper_decodes_again_when_speech_came_after_the_guess(speech_end) -> None:
    decoder = ScriptedDecoder()
    recognition = WhisperRecognition(decoder, None)  # type: ignore[arg-type]
    recognition.feed(np.zeros(16000, np.int16))
    recognition.guess(urgent=True)
    recognition.feed(np.zeros(8000, np.int16))  # more speech after the guess
    finishing = asyncio.create_task(recognition.finish(speech_end=speech_end))
    await asyncio.sleep(0)
    assert [n for n, _ in decoder.jobs] == [16000, 24000]
    decoder.jobs[1][1].set_result("we must find a new home")
    assert await finishing == "we must find a new home"
