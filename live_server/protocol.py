"""The Live wire format, with no I/O: parse client frames, build server frames.

Frames are JSON text: `{"t": type, ...}` from the client, `{"t": type, "data": ...}` from the
server (the AstrBot Live API, extended only additively). Every malformed client frame raises
one `ProtocolError` carrying the error code the client will see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from live_server.errors import ErrorCode, ProtocolError

ChannelType = Literal["live", "chat"]


@dataclass(frozen=True, slots=True)
class TextInput:
    text: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    pass


@dataclass(frozen=True, slots=True)
class StartSpeaking:
    stamp: str | int | float | None
    sample_rate: int


@dataclass(frozen=True, slots=True)
class SpeakingPart:
    data: str


@dataclass(frozen=True, slots=True)
class EndSpeaking:
    stamp: str | int | float | None


@dataclass(frozen=True, slots=True)
class ChatFrame:
    """A `ct: chat` frame; parsed only as far as its type until chat mode exists."""

    t: str
    body: dict[str, Any]


LiveFrame: TypeAlias = TextInput | Interrupt | StartSpeaking | SpeakingPart | EndSpeaking
ClientFrame: TypeAlias = LiveFrame | ChatFrame

VOICE_FRAME_TYPES = frozenset({"start_speaking", "speaking_part", "end_speaking"})
LIVE_FRAME_TYPES = frozenset({"text_input", "interrupt"}) | VOICE_FRAME_TYPES
DEFAULT_SAMPLE_RATE = 16000


def parse_client_frame(
    raw: str | bytes,
    *,
    max_text_chars: int,
    default_ct: ChannelType = "live",
    force_ct: bool = False,
) -> ClientFrame:
    """Parse one client frame, or raise `ProtocolError`.

    `default_ct` is the channel of a frame without a `ct` field; with `force_ct` it is the
    channel of every frame (sockets that serve one mode only).
    """
    if isinstance(raw, bytes):
        raise ProtocolError("binary frames are not supported; send JSON text frames")
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame must be a JSON object")
    t = obj.get("t")
    if not isinstance(t, str) or not t:
        raise ProtocolError('frame needs a string field "t"')
    ct = default_ct if force_ct else obj.get("ct", default_ct)
    if ct not in ("live", "chat"):
        raise ProtocolError('"ct" must be "live" or "chat"')
    if ct == "chat":
        return ChatFrame(t=t, body=obj)

    if t == "text_input":
        # AstrBot clients may send the text as "message"; accept both.
        text = obj.get("text", obj.get("message"))
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError('text_input needs a non-empty string field "text"')
        text = text.strip()
        if len(text) > max_text_chars:
            raise ProtocolError(
                f"text is {len(text)} characters; the limit is {max_text_chars}",
                code=ErrorCode.LIMIT_EXCEEDED,
            )
        return TextInput(text=text)
    if t == "interrupt":
        return Interrupt()
    if t == "start_speaking":
        rate = obj.get("sample_rate", DEFAULT_SAMPLE_RATE)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 48000:
            raise ProtocolError('"sample_rate" must be an integer from 8000 to 48000')
        return StartSpeaking(stamp=_stamp(obj), sample_rate=rate)
    if t == "speaking_part":
        data = obj.get("data")
        if not isinstance(data, str):
            raise ProtocolError('speaking_part needs a base64 string field "data"')
        return SpeakingPart(data=data)
    if t == "end_speaking":
        return EndSpeaking(stamp=_stamp(obj))
    raise ProtocolError(f"unknown frame type {t!r}")


def _stamp(obj: dict[str, Any]) -> str | int | float | None:
    stamp = obj.get("stamp")
    if stamp is None or isinstance(stamp, str | int | float):
        return stamp
    raise ProtocolError('"stamp" must be a string or a number')


# --- server frames -------------------------------------------------------------------------

Frame: TypeAlias = dict[str, Any]


def frame(t: str, data: Any = None, *, turn_id: int | None = None, **extra: Any) -> Frame:
    """A server frame. `turn_id` and `extra` are additive top-level fields."""
    out: Frame = {"t": t}
    if data is not None:
        out["data"] = data
    if turn_id is not None:
        out["turn_id"] = turn_id
    out.update(extra)
    return out


def error_frame(code: ErrorCode, message: str, *, turn_id: int | None = None) -> Frame:
    return frame("error", message, turn_id=turn_id, code=code.value)


def metrics(values: dict[str, Any], *, turn_id: int | None = None) -> Frame:
    return frame("metrics", values, turn_id=turn_id)


def user_msg(text: str, ts_ms: int, *, turn_id: int | None = None) -> Frame:
    return frame("user_msg", {"text": text, "ts": ts_ms}, turn_id=turn_id)


def bot_delta_chunk(text: str, *, turn_id: int | None = None) -> Frame:
    return frame("bot_delta_chunk", {"text": text}, turn_id=turn_id)


def bot_text_chunk(text: str, *, turn_id: int | None = None) -> Frame:
    return frame("bot_text_chunk", {"text": text}, turn_id=turn_id)


def response(
    audio_b64: str, *, sample_rate: int, duration_ms: int, turn_id: int | None = None
) -> Frame:
    return frame(
        "response",
        audio_b64,
        turn_id=turn_id,
        format="wav",
        sample_rate=sample_rate,
        duration_ms=duration_ms,
    )


def bot_msg(text: str, ts_ms: int, *, turn_id: int | None = None) -> Frame:
    return frame("bot_msg", {"text": text, "ts": ts_ms}, turn_id=turn_id)


def stop_play(*, turn_id: int | None = None) -> Frame:
    return frame("stop_play", turn_id=turn_id)


def end(*, interrupted: bool, turn_id: int | None = None) -> Frame:
    return frame("end", {"interrupted": interrupted}, turn_id=turn_id)


def encode(f: Frame) -> str:
    return json.dumps(f, ensure_ascii=False, separators=(",", ":"))
