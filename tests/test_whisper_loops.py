"""The check that sends a looping short-window decode back for a full-window one (pure)."""

from __future__ import annotations

import pytest

from live_server.engines.stt.whisper import looped


@pytest.mark.parametrize(
    "text",
    [
        "We must find a new home. We must find a new home.",
        "We must find a new home in the start. We must find a new home in the",
        "And so my fellow Americans. And so my fellow Americans. And so my fellow",
        "no no no no",
        "Visit bbc.co.uk for the news. Visit bbc.co.uk for",
        "I'm going to go ahead and I'm going to go ahead and I'm going to go ahead and",
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
        "",
    ],
)
def test_real_speech_is_not_taken_for_a_loop(text: str) -> None:
    assert not looped(text)
