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

    def decode(self, pcm: Any, *, urgent: bool) -> asyncio.Future[str]:
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
