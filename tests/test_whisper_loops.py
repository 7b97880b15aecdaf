"""The check that sends a looping short-window decode back for a longer window (pure), and
the ladder of windows on a real recording whose short window loops."""

from __future__ import annotations

import numpy as np
import pytest

from live_server.engines.stt import whisper
from live_server.engines.stt.whisper import FULL_FRAMES, looped, transcribed
from tests.speech import JFK, load


@pytest.mark.parametrize(
    "text",
    [
        "We must find a new home. We must find a new home.",
        "We must find a new home in the start. We must find a new home in the",
        "And so my fellow Americans. And so my fellow Americans. And so my fellow",
        "no no no no",
        "Visit bbc.co.uk for the news. Visit bbc.co.uk for",
        "I'm going to go ahead and I'm going to go ahead and I'm going to go ahead and",
        "He was not an old-s-y-y-y-y-y-y-",
    ],
)
def test_a_looping_decode_is_caught(text: str) -> None:
    assert looped(text)


@pytest.mark.parametrize(
    "text",
    [
        "And so my fellow Americans ask not what your country can do for you ask what you can do "
        "for your country.",
        "We must find a new home in the stars.",
        "Yes, yes, I know.",
        "Thank you for calling, thank you.",
        "Ha-ha, that's a good one. Mmm, let me think.",
        "Call 555-1111 or 1-800-000-0000.",
        "",
    ],
)
def test_real_speech_is_not_taken_for_a_loop(text: str) -> None:
    assert not looped(text)


def test_a_loop_in_the_short_window_is_decoded_again_in_a_window_short_of_30_s() -> None:
    """Cuts of Kennedy's opening ("And so my fellow Americans", and his pause) that loop in a
    window of their length and 2 s more are decoded again with 7 s more, which does not loop
    (on this machine, for all of them) and costs a fifth of the full window."""
    whisper.load_model(str(whisper.default_model()), None)
    pcm, _ = load(JFK)
    looping = []
    for tenths in range(8, 31):
        audio = pcm[: tenths * 1600].astype(np.float32) / 32768.0
        features = whisper._model.feature_extractor(audio)
        frames = features.shape[-1] + whisper.PAD_FRAMES
        frames += frames % 2  # as `transcribed` gives it, and the budget
        budget = 16 + int(8 * len(audio) / 16000)
        short, _, filled = whisper._generate(features, frames, budget)
        if filled or looped(short):
            looping.append((audio, frames))
    assert looping, "no cut loops in the short window: the case this is about is not here"
    windows = []
    for audio, frames in looping:
        text, window = transcribed(audio)
        assert not looped(text) and window > frames
        windows.append(window)
    assert min(windows) < FULL_FRAMES
