"""The VAD's decisions over scripted scores (pure), and the real Silero model on real speech."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from live_server.audio.vad import WINDOW, Event, ScorerPool, Timing, VoiceActivity
from tests.speech import JFK, SHORT, load, noise, silence


class Scripted:
    """Scores in order, one per window."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.resets = 0

    def score(self, window: np.ndarray[Any, Any]) -> float:
        assert window.dtype == np.float32 and len(window) == WINDOW
        return self.scores.pop(0)

    def reset(self) -> None:
        self.resets += 1


def run(scores: list[float], piece: int = WINDOW) -> tuple[VoiceActivity, list[tuple[int, Event]]]:
    activity = VoiceActivity(Scripted(scores), Timing(start_ms=64, pause_ms=128))
    audio = np.zeros(len(scores) * WINDOW, np.int16)
    events = []
    for i in range(0, len(audio), piece):
        for event in activity.feed(audio[i : i + piece]):
            events.append((activity.samples // WINDOW, event))
    return activity, events


def test_speech_needs_two_windows_to_start_and_four_quiet_ones_to_pause() -> None:
    scores = [0.1, 0.9, 0.2, 0.9, 0.9, 0.9, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1]
    activity, events = run(scores)
    # One loud window (a click) starts nothing; two do. 0.4 is still speech once started
    # (hysteresis), and the pause comes on the fourth quiet window.
    assert events == [(5, Event.SPEECH_STARTED), (11, Event.PAUSED)]
    assert activity.speech_seen and not activity.speaking
    assert activity.last_speech_end == 7 * WINDOW
    assert activity.silence_ms == 1000 * 5 * WINDOW // 16000


@pytest.mark.parametrize("piece", [1, 100, WINDOW, 3 * WINDOW + 7])
def test_pieces_of_any_length_give_the_same_events(piece: int) -> None:
    scores = [0.0, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0]
    activity, events = run(scores, piece)
    whole, by_window = run(scores)
    assert [e for _, e in events] == [e for _, e in by_window]
    assert activity.last_speech_end == whole.last_speech_end


def test_the_current_stretch_of_speech_is_measured_up_to_its_last_speech() -> None:
    activity, _ = run([0.9] * 10 + [0.1] * 2)
    assert activity.speaking
    assert activity.speech_run_ms == 1000 * 10 * WINDOW // 16000


def test_no_speech_in_silence() -> None:
    activity, events = run([0.0, 0.3, 0.49, 0.2] * 5)
    assert events == [] and not activity.speech_seen and activity.speech_run_ms == 0


@pytest.fixture(scope="module")
def silero() -> ScorerPool:
    return ScorerPool.silero()


def events_in(pool: ScorerPool, audio: np.ndarray[Any, Any]) -> list[Event]:
    scorer = pool.take()
    try:
        activity = VoiceActivity(scorer)
        return [e for i in range(0, len(audio), 1600) for e in activity.feed(audio[i : i + 1600])]
    finally:
        pool.give(scorer)


def test_silero_hears_real_speech_and_its_pauses(silero: ScorerPool) -> None:
    short, _ = load(SHORT)
    assert events_in(silero, short) == [Event.SPEECH_STARTED, Event.PAUSED]
    jfk, _ = load(JFK)
    events = events_in(silero, jfk)
    # Kennedy pauses between his phrases: each pause is a chance to decode speculatively.
    assert events.count(Event.PAUSED) >= 3 and events[0] is Event.SPEECH_STARTED


def test_silero_hears_no_speech_in_silence_or_noise(silero: ScorerPool) -> None:
    for audio in (silence(2.0), noise(2.0), noise(2.0, level=6000, seed=2)):
        assert events_in(silero, audio) == []


def test_a_pooled_model_starts_afresh(silero: ScorerPool) -> None:
    short, _ = load(SHORT)
    first = events_in(silero, short[: len(short) // 2])  # ends mid-speech
    assert events_in(silero, silence(1.0)) == []  # the next stream does not inherit it
    assert first == [Event.SPEECH_STARTED]
