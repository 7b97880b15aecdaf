"""Real speech for voice tests, synthesized by the embedded espeak engine in the test process."""

from __future__ import annotations

from typing import Any

import numpy as np

from live_server.providers.tts.espeak import EspeakTTS

# Phrases pocketsphinx's default English model recognises well from espeak's en-us voice.
PHRASES = ["open the door", "how are you", "one two three four five", "good morning"]

_cache: dict[str, tuple[np.ndarray[Any, Any], int]] = {}


async def speak(text: str, pad_s: float = 0.2) -> tuple[np.ndarray[Any, Any], int]:
    """`text` spoken at espeak's own rate (22050 Hz), with a little silence either side."""
    if text not in _cache:
        audio = await EspeakTTS(voice="en-us").synthesize(text)
        pad = np.zeros(int(pad_s * audio.sample_rate), dtype=np.int16)
        _cache[text] = (np.concatenate([pad, audio.samples, pad]), audio.sample_rate)
    return _cache[text]


def words_heard(said: str, heard: str) -> float:
    """The share of the words said that were recognised."""
    want = said.lower().split()
    got = set(heard.lower().split())
    return sum(w in got for w in want) / len(want)


# pocketsphinx normalises each utterance with a running estimate of the channel's average
# spectrum (live cepstral mean normalisation) that starts from a generic value and adapts over
# the first utterances a decoder hears. Like a new listener, a fresh decoder mishears the first
# few seconds of an unfamiliar voice. Voice tests therefore speak these sentences first, to a
# server with one decoder, and check recognition only after that.
CALIBRATION = [
    "this is a calibration sentence for the recogniser",
    "the quick brown fox jumps over the lazy dog",
]


def calibrate(live_url: str) -> None:
    """Speak the calibration sentences to the server (a blocking client, for fixtures)."""
    import asyncio
    import json

    from websockets.sync.client import connect

    from tests.client import voice_frames

    with connect(live_url, max_size=None, open_timeout=10) as ws:
        for i, sentence in enumerate(CALIBRATION):
            samples, rate = asyncio.run(speak(sentence))
            for frame in voice_frames(samples, rate, f"calibration-{i}"):
                ws.send(json.dumps(frame))
            while json.loads(ws.recv(timeout=60))["t"] != "end":
                pass
