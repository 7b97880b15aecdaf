"""The Live wire format, with no I/O: parse client frames, build server frames.

Frames are JSON text: `{"t": type, ...}` from the client, `{"t": type, "data": ...}` from the
server (the AstrBot Live API, extended only additively). Every malformed client frame raises
one `ProtocolError` carrying the error code the client will see.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from live_server.core.turn import MAX_PLAYED_MS
from live_server.errors import ErrorCode, ProtocolError
from live_server.storage import ID_RE
from live_server.wire_json import compact_json, decode_json

ChannelType = Literal["live", "chat"]


@dataclass(frozen=True, slots=True)
class TextInput:
    text: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    # Additive: how much of the turn's audio the client played; the saved reply is cut to it.
    played_ms: int | None = None


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
    """A `ct: chat` frame, parsed further by `parse_chat_frame` so that its errors can be
    reported as chat errors."""

    t: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatBind:
    session_id: str


@dataclass(frozen=True, slots=True)
class ChatSend:
    text: str
    session_id: str | None
    message_id: str | None
    streaming: bool


@dataclass(frozen=True, slots=True)
class ChatInterrupt:
    message_id: str | None


ClientFrame: TypeAlias = (
    TextInput | Interrupt | StartSpeaking | SpeakingPart | EndSpeaking | ChatFrame
)
ChatRequest: TypeAlias = ChatBind | ChatSend | ChatInterrupt

DEFAULT_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000


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
    obj = decode_json(raw, "frame")
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
        return TextInput(text=_limited(text.strip(), max_text_chars))
    if t == "interrupt":
        played = obj.get("played_ms")
        if played is not None and (
            isinstance(played, bool)
            or not isinstance(played, int | float)
            or not 0 <= played <= MAX_PLAYED_MS
        ):
            raise ProtocolError(
                f'"played_ms" must be a number of milliseconds from 0 to {MAX_PLAYED_MS}'
            )
        return Interrupt(played_ms=None if played is None else int(played))
    if t == "start_speaking":
        rate = obj.get("sample_rate", DEFAULT_SAMPLE_RATE)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int)
            or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
        ):
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


def parse_chat_frame(frame: ChatFrame, *, max_text_chars: int) -> ChatRequest:
    """A `ct: chat` frame's request, or `ProtocolError`."""
    body = frame.body
    if frame.t == "bind":
        session_id = _id(body, "session_id")
        if session_id is None:
            raise ProtocolError('bind needs a "session_id"')
        return ChatBind(session_id)
    if frame.t == "send":
        return parse_chat_send(body, max_text_chars=max_text_chars)
    if frame.t == "interrupt":
        return ChatInterrupt(_id(body, "message_id"))
    raise ProtocolError(f"unknown chat frame type {frame.t!r}; expected bind, send or interrupt")


def parse_chat_send(body: dict[str, Any], *, max_text_chars: int) -> ChatSend:
    """A chat message to reply to: a `send` frame's fields, or the HTTP chat API's body."""
    streaming = body.get("enable_streaming", True)
    if not isinstance(streaming, bool):
        raise ProtocolError('"enable_streaming" must be true or false')
    return ChatSend(
        text=_limited(message_text(body.get("message")), max_text_chars),
        session_id=_id(body, "session_id"),
        message_id=_id(body, "message_id"),
        streaming=streaming,
    )


def message_text(message: object) -> str:
    """The text of a chat `message`: a list of parts such as `{"type": "plain", "text": ...}`,
    or a plain string. Raises `ProtocolError`."""
    if isinstance(message, str):
        text = message
    elif isinstance(message, list) and message:
        texts = []
        for part in message:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise ProtocolError('each part of "message" must be an object with a "type"')
            if part["type"] != "plain":
                raise ProtocolError(
                    f"message parts of type {part['type']!r} are not supported; send plain text",
                    code=ErrorCode.UNSUPPORTED,
                )
            if not isinstance(part.get("text"), str):
                raise ProtocolError('a plain message part needs a string "text"')
            texts.append(part["text"])
        text = "\n".join(texts)
    else:
        raise ProtocolError(
            '"message" must be a non-empty list of parts like {"type": "plain", "text": "..."}'
        )
    if not text.strip():
        raise ProtocolError('"message" holds no text')
    return text.strip()


def _limited(text: str, max_chars: int) -> str:
    if len(text) > max_chars:
        raise ProtocolError(
            f"text is {len(text)} characters; the limit is {max_chars}",
            code=ErrorCode.LIMIT_EXCEEDED,
        )
    return text


def _id(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ProtocolError(f'"{name}" must be 1-128 characters of letters, digits and _.:-')
    return value


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


def user_partial(text: str) -> Frame:
    """Additive: what the user has said so far, while they speak (not the final transcript)."""
    return frame("user_partial", {"text": text})


def speech_started() -> Frame:
    """Additive, on `vad=server` sockets: the server's VAD hears the user speak."""
    return frame("speech_started")


def speech_stopped() -> Frame:
    """Additive, on `vad=server` sockets: the user stopped long enough to end the turn."""
    return frame("speech_stopped")


def bot_reasoning_chunk(text: str, *, turn_id: int | None = None) -> Frame:
    return frame("bot_reasoning_chunk", {"text": text}, turn_id=turn_id)


def bot_delta_chunk(text: str, *, turn_id: int | None = None) -> Frame:
    return frame("bot_delta_chunk", {"text": text}, turn_id=turn_id)


def bot_text_chunk(text: str, *, turn_id: int | None = None) -> Frame:
    return frame("bot_text_chunk", {"text": text}, turn_id=turn_id)


class Base64(str):
    """Base64 text, which needs no JSON escaping: `encode` splices it in instead of scanning
    it (a second of audio is about 60 kB of it)."""

    __slots__ = ()


def response(
    wav: bytes, *, sample_rate: int, duration_ms: int, turn_id: int | None = None
) -> Frame:
    return frame(
        "response",
        Base64(base64.b64encode(wav).decode("ascii")),
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


def conversation(conversation_id: str, *, resumed: bool, messages: int) -> Frame:
    """Additive, sent once right after connect: the conversation this socket's turns go to."""
    return frame("conversation", {"id": conversation_id, "resumed": resumed, "messages": messages})


# Chat mode (`ct: chat`) frames carry `type` instead of `t`, so a live client on the unified
# socket never mistakes a chat `end` for a live one. Errors keep `t: error`.


def chat_frame(
    type_: str,
    data: Any,
    *,
    session_id: str | None,
    message_id: str | None,
    streaming: bool = False,
    **extra: Any,
) -> Frame:
    out: Frame = {"ct": "chat", "type": type_, "data": data, "streaming": streaming}
    return {**_ids(out, session_id, message_id), **extra}


def chat_error(
    code: ErrorCode, message: str, *, session_id: str | None = None, message_id: str | None = None
) -> Frame:
    out: Frame = {"ct": "chat", "t": "error", "code": code.value, "data": message}
    return _ids(out, session_id, message_id)


def _ids(out: Frame, session_id: str | None, message_id: str | None) -> Frame:
    if session_id is not None:
        out["session_id"] = session_id
    if message_id is not None:
        out["message_id"] = message_id
    return out


def encode(f: Frame) -> str:
    data = f.get("data")
    if isinstance(data, Base64):
        rest = {k: v for k, v in f.items() if k != "data"}
        head = compact_json(rest)
        # `{...}` becomes `{...,"data":"<base64>"}`: the payload is not scanned for escapes.
        return f'{head[:-1]}{"," if rest else ""}"data":"{data}"}}'
    return compact_json(f)
