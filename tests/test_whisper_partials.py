"""Whisper's partial transcripts, from guesses that end in any order (a scripted engine)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from live_server.engines.stt.whisper import WhisperRecognition


class ScriptedWhisper:
    """Decodes that end when the test says, in any order (guesses run on several workers)."""

    def __init__(self) -> None:
        self.decodes: list[asyncio.Future[str]] = []
        self.asked: list[tuple[int, str]] = []  # each decode's samples, and the words before

    def decode(self, pcm: Any, *, urgent: bool, before: str = "") -> asyncio.Future[str]:
        self.asked.append((len(pcm), before))
        self.decodes.append(asyncio.get_running_loop().create_future())
        return self.decodes[-1]


async def test_a_partial_transcript_never_goes_back_to_a_shorter_guess() -> None:
    engine, heard = ScriptedWhisper(), []
    recognition = WhisperRecognition(engine, heard.append)  # type: ignore[arg-type]
    for _ in range(2):
        recognition.feed(np.zeros(16000, np.int16))
        recognition.guess(urgent=False)
    engine.decodes[1].set_result("And so my fellow Americans ask not")
    await asyncio.sleep(0)  # the done callbacks run
    engine.decodes[0].set_result("And so my fellow")  # the earlier guess, done later
    await asyncio.sleep(0)
    assert heard == ["And so my fellow Americans ask not"]
    recognition.feed(np.zeros(16000, np.int16))
    recognition.guess(urgent=True)
    engine.decodes[2].set_result("And so my fellow Americans ask not what")
    await asyncio.sleep(0)
    assert heard[-1] == "And so my fellow Americans ask not what"


async def test_a_long_utterance_is_decoded_from_its_last_long_pause_on() -> None:
    """A reading of 50 s was decoded whole at each pause. Once a guess at a pause covers 12 s,
    its words stand: later decodes take the audio after it, and go on from its words."""
    engine = ScriptedWhisper()
    recognition = WhisperRecognition(engine, None)  # type: ignore[arg-type]
    second = 16000
    recognition.feed(np.zeros(5 * second, np.int16))
    recognition.guess(urgent=True)  # a pause 5 s in: too soon to keep its words
    engine.decodes[0].set_result("From fairest creatures we desire increase.")
    recognition.feed(np.zeros(8 * second, np.int16))
    recognition.guess(urgent=False)  # not at a pause: its words do not stand
    engine.decodes[1].set_result("From fairest creatures we desire increase, that thereby")
    recognition.feed(np.zeros(1 * second, np.int16))
    recognition.guess(urgent=True)  # 14 s in, at a pause
    await asyncio.sleep(0)
    assert engine.asked == [(5 * second, ""), (13 * second, ""), (14 * second, "")]
    kept = "From fairest creatures we desire increase, that thereby beauty's rose might never die."
    engine.decodes[2].set_result(kept)
    await asyncio.sleep(0)
    recognition.feed(np.zeros(3 * second, np.int16))
    recognition.guess(urgent=True)
    assert engine.asked[-1] == (3 * second, kept)  # only what came after, after its words
    engine.decodes[3].set_result(kept + " But as the riper should by time decease.")
    recognition.feed(np.zeros(second, np.int16))
    final = asyncio.ensure_future(recognition.finish(speech_end=18 * second))  # decodes again
    await asyncio.sleep(0)
    assert engine.asked[-1] == (4 * second, kept)
    engine.decodes[4].set_result(kept + " But as the riper should by time decease, his heir.")
    assert (await final).endswith("his heir.")
