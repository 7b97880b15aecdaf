"""The AstrBot Live API codec: events (a voice turn's, a chat reply's) to `{"t": ..., "data": ...}`
frames, byte for byte as `frames` builds them. No I/O, no state beyond the clock it stamps with."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, assert_never

from live_server.astrbot import frames
from live_server.core import events


class AstrBotCodec:
    def encode(self, event: events.Event) -> list[str]:
        return [frames.encode(frame) for frame in frames_of(event)]


def frames_of(event: events.Event | events.ChatEvent) -> list[frames.Frame]:
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
        case events.ReasoningDelta(turn_id, text):
            return [frames.bot_reasoning_chunk(text, turn_id=turn_id)]
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
        case events.ChatAccepted():
            return [_chat(event, "session_id", None)]
        case events.ChatStarted(_, message_id):
            return [_chat(event, "run_started", {"run_id": message_id})]
        case events.ChatDelta(_, _, text):
            return [_chat(event, "plain", text, streaming=True, chain_type=None)]
        case events.ChatReasoning(_, _, text):  # AstrBot's dashboard shape for reasoning
            return [_chat(event, "plain", text, streaming=True, chain_type="reasoning")]
        case events.ChatReplied(_, _, text, streamed, reasoning):
            shown = {"reasoning": reasoning} if reasoning else {}
            if streamed:  # the streamed reply, whole: AstrBot 4.29's `complete`
                return [_chat(event, "complete", text, streaming=True, chain_type=None, **shown)]
            return [_chat(event, "plain", text, chain_type=None, **shown)]
        case events.ChatStats(_, _, values):
            return [_chat(event, "agent_stats", values)]
        case events.ChatSaved(_, _, user_id, assistant_id, created_at):
            at = iso_time(created_at)
            return [
                _chat(event, "user_message_saved", {"id": user_id, "created_at": at}),
                _chat(
                    event,
                    "message_saved",
                    {"id": assistant_id, "user_message_id": user_id, "created_at": at},
                ),
            ]
        case events.ChatFailed(session_id, message_id, code, message):
            return [frames.chat_error(code, message, session_id=session_id, message_id=message_id)]
        case events.ChatEnded(_, _, interrupted, saved_id):
            if saved_id is None:
                return [_chat(event, "end", "", interrupted=interrupted)]
            return [_chat(event, "end", "", interrupted=interrupted, saved_message_id=saved_id)]
        case _:
            assert_never(event)


def _chat(event: events.ChatEvent, type_: str, data: Any, **extra: Any) -> frames.Frame:
    return frames.chat_frame(
        type_, data, session_id=event.session_id, message_id=event.message_id, **extra
    )


def iso_time(ts: float) -> str:
    """A stored message's time as AstrBot writes it: UTC, to the millisecond, with a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_ms() -> int:
    return int(time.time() * 1000)
