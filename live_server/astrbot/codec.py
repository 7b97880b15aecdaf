"""The AstrBot Live API codec: events to `{"t": ..., "data": ...}` frames, byte for byte as
`frames` builds them."""

from __future__ import annotations

import time
from typing import assert_never

from live_server.astrbot import frames
from live_server.core import events


class AstrBotCodec:
    def encode(self, event: events.Event) -> list[str]:
        return [frames.encode(frame) for frame in frames_of(event)]


def frames_of(event: events.Event) -> list[frames.Frame]:
    match event:
        case events.ConversationOpened(conversation_id, resumed, messages):
            return [frames.conversation(conversation_id, resumed=resumed, messages=messages)]
        case events.SpeechStarted():
            return [frames.speech_started()]
        case events.SpeechStopped():
            return [frames.speech_stopped()]
        case events.PartialTranscript(text):
            return [frames.user_partial(text)]
        case events.TurnStarted(turn_id, _, user_text, figures):
            return [
                frames.metrics(figures, turn_id=turn_id),
                frames.user_msg(user_text, _now_ms(), turn_id=turn_id),
            ]
        case events.TextDelta(turn_id, text):
            return [frames.bot_delta_chunk(text, turn_id=turn_id)]
        case events.Sentence(turn_id, text):
            return [frames.bot_text_chunk(text, turn_id=turn_id)]
        case events.SpokenAudio(turn_id, _, audio):
            return [
                frames.response(
                    audio.to_wav(),
                    sample_rate=audio.sample_rate,
                    duration_ms=audio.duration_ms,
                    turn_id=turn_id,
                )
            ]
        case events.ReplyText(turn_id, text):
            return [frames.bot_msg(text, _now_ms(), turn_id=turn_id)]
        case events.Metrics(turn_id, values):
            return [frames.metrics(values, turn_id=turn_id)]
        case events.Failed(code, message, turn_id):
            return [frames.error_frame(code, message, turn_id=turn_id)]
        case events.Stopped(turn_id):
            return [frames.stop_play(turn_id=turn_id)]
        case events.Ended(turn_id, interrupted):
            return [frames.end(interrupted=interrupted, turn_id=turn_id)]
        case events.InputAdded() | events.Transcript() | events.Truncated():
            return []  # the user's text comes with `user_msg`; a cut is silent
        case _:
            assert_never(event)


def _now_ms() -> int:
    return int(time.time() * 1000)
