"""The OpenAI Realtime API codec: the session's events as Realtime server events.

Stateful, one per connection: it names the conversation items and responses (`item_...`,
`resp_...`) and remembers which turn each belongs to, so that a `conversation.item.truncate`
finds its turn. A response's opening events are sent when its turn starts, its deltas as the
turn streams (dropped once it is interrupted, like any turn frame), and its closing events
(`*.done`, then `response.done`) with the turn's end, carrying what was kept of the reply:
the whole reply, or what the user heard of it.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any, assert_never

import numpy as np

from live_server import wire_json
from live_server.audio.resample import Resampler
from live_server.core import events
from live_server.errors import ErrorCode

RATE = 24000  # the API's PCM rate, in and out
CHUNK_MS = 100  # audio deltas: this much speech each
# The latest replies a client may still truncate: the one playing and a few before it. The
# server forgets older ones, so that a long conversation does not keep every reply it had.
TRUNCATABLE = 16
# Our codes that mean the client's event was wrong; the rest are the server's failures.
CLIENT_ERRORS = frozenset(
    {
        ErrorCode.INVALID_MESSAGE_FORMAT,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNSUPPORTED,
        ErrorCode.PROCESSING_ERROR,
        ErrorCode.LIMIT_EXCEEDED,
        ErrorCode.AUDIO_ERROR,
        ErrorCode.EMPTY_TRANSCRIPT,
        ErrorCode.NOT_FOUND,
        ErrorCode.FORBIDDEN,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.BAD_USER,
    }
)


# Ids only need to be unique, not secret (a client can name only its own connection's items):
# a random prefix per process and a counter, rather than a getrandom call for each of the
# half-dozen events that precede a response's first delta.
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@dataclass
class _Response:
    id: str
    item_id: str
    opened: bool = False  # its item and content part were announced


@dataclass
class RealtimeCodec:
    audio: bool = True  # replies spoken (`output_modalities: ["audio"]`) or text only
    _responses: dict[int, _Response] = field(default_factory=dict)
    _items: dict[str, int] = field(default_factory=dict)  # assistant item id -> turn id
    _inputs: dict[int, str] = field(default_factory=dict)  # input id -> user item id
    _last_item: str | None = None
    _speech_item: str | None = None  # the item the speech being heard will become
    _partial: str = ""

    def turn_of(self, item_id: str) -> int | None:
        return self._items.get(item_id)

    def encode(self, event: events.Event) -> list[str]:
        return [self.dump(e) for e in self.server_events(event)]

    def dump(self, server_event: dict[str, Any]) -> str:
        return wire_json.compact_json({"event_id": new_id("event"), **server_event})

    def error(
        self, code: ErrorCode | str, message: str, *, event_id: str | None = None
    ) -> dict[str, Any]:
        kind = "invalid_request_error" if code in CLIENT_ERRORS else "server_error"
        error: dict[str, Any] = {"type": kind, "code": str(code).lower(), "message": message}
        if event_id is not None:
            error["event_id"] = event_id
        return {"type": "error", "error": error}

    def server_events(self, event: events.Event) -> list[dict[str, Any]]:
        match event:
            case events.ConversationOpened(conversation_id):
                conversation = {"id": conversation_id, "object": "realtime.conversation"}
                return [{"type": "conversation.created", "conversation": conversation}]
            case events.SpeechStarted(audio_ms):
                self._speech_item = item = new_id("item")
                self._partial = ""
                return [
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": audio_ms,
                        "item_id": item,
                    }
                ]
            case events.SpeechStopped(audio_ms):
                item = self._speech_item or new_id("item")
                self._speech_item = item
                return [
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": audio_ms,
                        "item_id": item,
                    }
                ]
            case events.PartialTranscript(text):
                # The API's deltas add up; a guess that changed its mind adds nothing.
                if not text.startswith(self._partial) or text == self._partial:
                    return []
                delta, self._partial = text[len(self._partial) :], text
                item = self._speech_item = self._speech_item or new_id("item")
                return [
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item,
                        "content_index": 0,
                        "delta": delta,
                    }
                ]
            case events.InputAdded(input_id, kind, text):
                return self._input_added(input_id, kind, text)
            case events.Transcript(input_id, text, seconds):
                item = self._inputs.get(input_id, new_id("item"))
                user = _user_item(item, {"type": "input_audio", "transcript": text}, "completed")
                return [
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item,
                        "content_index": 0,
                        "transcript": text,
                        "usage": {"type": "duration", "seconds": seconds},
                    },
                    {"type": "conversation.item.done", "item": user},
                ]
            case events.TurnStarted(turn_id):
                return self._open(turn_id)
            case events.ReasoningDelta():
                return []  # the published Realtime API has no event for a model's reasoning
            case events.TextDelta(turn_id, text):
                if self.audio:
                    return []  # a spoken reply's text comes as the transcript of its audio
                return [self._delta(turn_id, "response.output_text.delta", text)]
            case events.Sentence(turn_id, text):
                if not self.audio:
                    return []
                return [self._delta(turn_id, "response.output_audio_transcript.delta", text)]
            case events.SpokenAudio(turn_id, _, audio):
                return [
                    self._delta(turn_id, "response.output_audio.delta", chunk)
                    for chunk in _pcm_chunks(audio.samples, audio.sample_rate)
                ]
            case events.ReplyText() | events.Metrics() | events.Stopped():
                return []
            case events.Failed(code, message):
                return [self.error(code, message)]
            case events.Ended():
                return self._close(event)
            case events.Truncated(turn_id, played_ms):
                response = self._responses.get(turn_id)
                if response is None:
                    return []
                return [
                    {
                        "type": "conversation.item.truncated",
                        "item_id": response.item_id,
                        "content_index": 0,
                        "audio_end_ms": played_ms,
                    }
                ]
            case _:
                assert_never(event)

    # --- items and responses ---------------------------------------------------------------

    def _input_added(self, input_id: int, kind: str, text: str) -> list[dict[str, Any]]:
        previous, item = self._last_item, self._speech_item or new_id("item")
        self._speech_item, self._partial = None, ""
        self._inputs[input_id] = self._last_item = item
        if kind == "text":
            user = _user_item(item, {"type": "input_text", "text": text}, "completed")
            added = {"type": "conversation.item.added", "previous_item_id": previous, "item": user}
            return [added, {**added, "type": "conversation.item.done"}]
        user = _user_item(item, {"type": "input_audio", "transcript": None}, "in_progress")
        return [
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item},
            {"type": "conversation.item.added", "previous_item_id": previous, "item": user},
        ]

    def _response(self, turn_id: int) -> tuple[_Response, list[dict[str, Any]]]:
        """The turn's response, and the event that creates it if this is its first mention."""
        response = self._responses.get(turn_id)
        if response is not None:
            return response, []
        response = _Response(new_id("resp"), new_id("item"))
        self._responses[turn_id] = response
        self._items[response.item_id] = turn_id
        while len(self._responses) > TRUNCATABLE:  # older replies can no longer be truncated
            old = self._responses.pop(next(iter(self._responses)))
            self._items.pop(old.item_id, None)
        created = {"type": "response.created", "response": self._body(response, "in_progress", [])}
        return response, [created]

    def _open(self, turn_id: int) -> list[dict[str, Any]]:
        response, out = self._response(turn_id)
        if response.opened:
            return out
        response.opened = True
        previous, self._last_item = self._last_item, response.item_id
        item = self._item(response, "in_progress", "")
        ids = {"response_id": response.id, "output_index": 0}
        part = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
        return [
            *out,
            {"type": "response.output_item.added", **ids, "item": item},
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item},
            {
                "type": "response.content_part.added",
                **ids,
                "item_id": response.item_id,
                "content_index": 0,
                "part": part,
            },
        ]

    def _delta(self, turn_id: int, kind: str, delta: str) -> dict[str, Any]:
        response = self._responses[turn_id]
        return {
            "type": kind,
            "response_id": response.id,
            "item_id": response.item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": delta,
        }

    def _close(self, ended: events.Ended) -> list[dict[str, Any]]:
        response, out = self._response(ended.turn_id)
        if ended.interrupted:
            status, details = "cancelled", {"type": "cancelled", "reason": "client_cancelled"}
        elif ended.failed:
            status, details = "failed", {"type": "failed"}
        else:
            status, details = "completed", None
        output: list[dict[str, Any]] = []
        if response.opened:
            text = ended.assistant
            item_status = "incomplete" if ended.interrupted or ended.failed else "completed"
            item = self._item(response, item_status, text)
            ids = {"response_id": response.id, "item_id": response.item_id, "output_index": 0}
            part_ids = {**ids, "content_index": 0}
            if self.audio:
                out.append({"type": "response.output_audio.done", **part_ids})
                out.append(
                    {
                        "type": "response.output_audio_transcript.done",
                        **part_ids,
                        "transcript": text,
                    }
                )
                part = {"type": "audio", "transcript": text}
            else:
                out.append({"type": "response.output_text.done", **part_ids, "text": text})
                part = {"type": "text", "text": text}
            out.append({"type": "response.content_part.done", **part_ids, "part": part})
            out.append(
                {
                    "type": "response.output_item.done",
                    "response_id": response.id,
                    "output_index": 0,
                    "item": item,
                }
            )
            out.append({"type": "conversation.item.done", "item": item})
            output.append(item)
        body = self._body(response, status, output)
        if details is not None:
            body["status_details"] = details
        out.append({"type": "response.done", "response": body})
        return out

    def _body(self, response: _Response, status: str, output: list[Any]) -> dict[str, Any]:
        return {
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "output": output,
            "output_modalities": ["audio" if self.audio else "text"],
        }

    def _item(self, response: _Response, status: str, text: str) -> dict[str, Any]:
        content = (
            {"type": "output_audio", "transcript": text}
            if self.audio
            else {"type": "output_text", "text": text}
        )
        return {
            "id": response.item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [content],
        }


def _user_item(item_id: str, content: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": status,
        "content": [content],
    }


def _pcm_chunks(samples: np.ndarray[Any, Any], rate: int) -> list[str]:
    """The speech as 24 kHz PCM16 in `CHUNK_MS` pieces, base64."""
    if rate < RATE:
        samples = _upsample(samples, rate)
    elif rate > RATE:
        resampler = Resampler(rate, RATE)
        samples = np.concatenate([resampler.feed(samples), resampler.flush()])
    step = RATE * CHUNK_MS // 1000
    data = samples.astype("<i2", copy=False)
    return [
        base64.b64encode(data[i : i + step].tobytes()).decode("ascii")
        for i in range(0, len(data), step)
    ]


# Where each 24 kHz sample falls between two source samples, per source rate: computed once
# (and grown as longer sentences come) since the voice's rate does not change.
_POSITIONS: dict[int, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}


def _upsample(samples: np.ndarray[Any, Any], rate: int) -> np.ndarray[Any, Any]:
    """Linear interpolation to 24 kHz. Raising the rate adds no frequencies to filter out, so
    this is exact enough for speech, at a tenth of the streaming resampler's cost: it runs on
    the event loop, in front of the first audio delta."""
    n = len(samples) * RATE // rate
    index, frac = _POSITIONS.get(rate, (np.zeros(0, np.int32), np.zeros(0, np.float32)))
    if len(index) < n:
        pos = np.arange(max(n, 2 * len(index)), dtype=np.int64) * rate
        index, frac = (pos // RATE).astype(np.int32), ((pos % RATE) / RATE).astype(np.float32)
        _POSITIONS[rate] = index, frac
    x = samples.astype(np.float32)
    step = np.diff(x, append=x[-1:])
    i = index[:n]
    out: np.ndarray[Any, Any] = (x[i] + step[i] * frac[:n]).astype(np.int16)
    return out
