"""The OpenAI Realtime API over a socket (`/v1/realtime`), parsing and dispatching only (the
session's options are set whole, as a `SessionOptions`): client events become session
commands, and the session's events go out through the Realtime codec.

What the API's client events mean here:

- `session.update`: `instructions` (the system prompt), `output_modalities` (`["audio"]` or
  `["text"]`), the audio formats (PCM 16-bit at 24 kHz only), `audio.input.turn_detection`
  (`server_vad` with its `silence_duration_ms` and `create_response`, or null), `voice`
  (accepted, but the server speaks with its one configured voice).
- `input_audio_buffer.append` / `commit` / `clear`: speech in. With server VAD the server
  commits by itself when the speaker pauses, answers (unless `create_response` is false), and
  stops a reply the user talks over.
- `conversation.item.create` (a user text message) and `response.create`: a reply to what was
  added since the last one. `response.cancel` stops it; `conversation.item.truncate` keeps only
  the audio the client played of an assistant item, as the AstrBot socket's `played_ms` does.

Every refused event is answered with an `error` event, and the connection stays open.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from live_server import wire_json
from live_server.core.session import Session
from live_server.core.turn import MAX_PLAYED_MS
from live_server.core.turn_end import Eagerness
from live_server.core.voice_input import TurnDetection
from live_server.errors import ErrorCode, LiveError, ProtocolError
from live_server.realtime.codec import RATE, TRUNCATABLE, RealtimeCodec, new_id
from live_server.transport.connection import Connection

MAX_EVENT_CHARS = 16 * 1024 * 1024  # an append of a few minutes of audio


class RealtimeSocket:
    def __init__(
        self, connection: Connection, session: Session, codec: RealtimeCodec, *, model: str
    ) -> None:
        self.connection = connection
        self.session = session
        self.codec = codec
        self.model = model
        self.voice_name = "default"
        self.detection: dict[str, Any] | None = None
        self._event_id: str | None = None  # the client event being handled, for its errors
        detection, auto_respond = self._turn_detection(
            {"type": "server_vad", "silence_duration_ms": session.settings.vad_silence_ms}
        )
        session.configure(
            replace(
                session.options,
                speak=codec.audio,
                detection=detection,
                auto_respond=auto_respond,
                implicit_rate=RATE,
                cuttable_turns=TRUNCATABLE,
            )
        )

    # --- the session object ------------------------------------------------------------

    def description(self) -> dict[str, Any]:
        session = self.session
        stt = session.engines.stt
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": new_id("sess"),
            "model": self.model,
            "output_modalities": ["audio" if self.codec.audio else "text"],
            "instructions": session.options.instructions,
            "tools": [],
            "tool_choice": "none",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "transcription": {"model": stt.name} if stt is not None else None,
                    "turn_detection": self.detection,
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "voice": self.voice_name,
                },
            },
        }

    def greet(self) -> None:
        self.connection.send_text_now(
            self.codec.dump({"type": "session.created", "session": self.description()})
        )

    # --- client events -------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> Awaitable[None] | None:
        self._event_id = None
        if len(raw) > MAX_EVENT_CHARS:
            raise ProtocolError(
                f"the event is larger than {MAX_EVENT_CHARS} characters",
                code=ErrorCode.LIMIT_EXCEEDED,
            )
        event = wire_json.decode_json(raw, "event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ProtocolError('an event is a JSON object with a "type"')
        event_id = event.get("event_id")
        self._event_id = event_id if isinstance(event_id, str) else None
        session = self.session
        match event["type"]:
            case "session.update":
                self._update(_object(event, "session"))
            case "input_audio_buffer.append":
                session.add_audio(_string(event, "audio"))
            case "input_audio_buffer.commit":
                session.commit_audio()
            case "input_audio_buffer.clear":
                session.clear_audio()
                self._send({"type": "input_audio_buffer.cleared"})
            case "conversation.item.create":
                session.add_text(_user_text(_object(event, "item")))
            case "response.create":
                session.respond()
            case "response.cancel":
                if not session.replying:
                    raise ProtocolError(
                        "there is no response to cancel", code=ErrorCode.PROCESSING_ERROR
                    )
                session.interrupt(None)
            case "conversation.item.truncate":
                self._truncate(event)
            case other:
                raise ProtocolError(
                    f"unknown or unsupported event type {other!r}", code=ErrorCode.UNSUPPORTED
                )
        return None

    def refuse(self, error: LiveError) -> None:
        self.connection.send_text_now(
            self.codec.dump(self.codec.error(error.code, error.message, event_id=self._event_id))
        )

    async def aclose(self) -> None:
        await self.session.aclose()

    def _send(self, server_event: dict[str, Any]) -> None:
        self.connection.send_text_now(self.codec.dump(server_event))

    # --- session.update ------------------------------------------------------------------

    def _update(self, config: dict[str, Any]) -> None:
        """Check the whole update first, then apply it: a refused update changes nothing."""
        if config.get("tools"):
            raise ProtocolError("function calling is not supported", code=ErrorCode.UNSUPPORTED)
        instructions = config.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise ProtocolError("session.instructions must be a string")
        modalities = config.get("output_modalities")
        audio_out: bool | None = None
        if modalities is not None:
            if modalities not in (["audio"], ["text"]):
                raise ProtocolError('output_modalities must be ["audio"] or ["text"]')
            audio_out = modalities == ["audio"]
            if audio_out and self.session.engines.tts is None:
                raise ProtocolError(
                    "speech synthesis is off on this server (LIVE_TTS=none): use text",
                    code=ErrorCode.UNSUPPORTED,
                )
        audio = config.get("audio") or {}
        if not isinstance(audio, dict):
            raise ProtocolError("session.audio must be an object")
        audio_in = _section(audio, "input")
        audio_output = _section(audio, "output")
        for section in (audio_in, audio_output):
            _check_format(section.get("format"))
        voice = audio_output.get("voice")
        if voice is not None and not isinstance(voice, str):
            raise ProtocolError("voice must be a string")
        detection = audio_in.get("turn_detection", ...)
        if detection is not ... and detection is not None:
            _check_detection(detection)
        # Apply.
        options = self.session.options
        if instructions is not None:
            options = replace(options, instructions=instructions)
        if audio_out is not None:
            self.codec.audio = audio_out
            options = replace(options, speak=audio_out)
        if voice is not None:
            self.voice_name = voice
        if detection is not ...:
            server, auto_respond = self._turn_detection(detection)
            options = replace(options, detection=server, auto_respond=auto_respond)
        self.session.configure(options)
        self._send({"type": "session.updated", "session": self.description()})

    def _turn_detection(self, config: dict[str, Any] | None) -> tuple[TurnDetection | None, bool]:
        """The session's turn detection for a checked `turn_detection` (None: the client's
        own commits), and whether a detected turn starts a reply; `self.detection` echoes it."""
        settings = self.session.settings
        if config is None:
            self.detection = None
            return None, False
        interrupt = bool(config.get("interrupt_response", True))
        self.detection = {
            "type": config.get("type", "server_vad"),
            "create_response": config.get("create_response", True),
            "interrupt_response": interrupt,
        }
        if self.detection["type"] == "semantic_vad":
            eagerness = Eagerness(config.get("eagerness", "auto"))
            self.detection["eagerness"] = eagerness.value
            detection = TurnDetection.configured(
                settings, RATE, eagerness=eagerness, barge_in=interrupt
            )
        else:
            silence = config.get("silence_duration_ms", settings.vad_silence_ms)
            self.detection["silence_duration_ms"] = silence
            detection = TurnDetection.configured(
                settings, RATE, silence_ms=silence, barge_in=interrupt
            )
        return detection, bool(self.detection["create_response"])

    # --- truncate ------------------------------------------------------------------------

    def _truncate(self, event: dict[str, Any]) -> None:
        item_id = _string(event, "item_id")
        played = event.get("audio_end_ms")
        if not isinstance(played, int) or isinstance(played, bool) or played < 0:
            raise ProtocolError("audio_end_ms must be a non-negative integer")
        if played > MAX_PLAYED_MS:
            raise ProtocolError("audio_end_ms is too large")
        turn_id = self.codec.turn_of(item_id)
        if turn_id is None:
            raise ProtocolError(f"no assistant item {item_id!r}", code=ErrorCode.NOT_FOUND)
        self.session.cut(turn_id, played)


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name)
    if not isinstance(value, dict):
        raise ProtocolError(f"{event['type']} needs an object {name!r}")
    return value


def _section(audio: dict[str, Any], name: str) -> dict[str, Any]:
    value = audio.get(name) or {}
    if not isinstance(value, dict):
        raise ProtocolError(f"session.audio.{name} must be an object")
    return value


def _string(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f"{event['type']} needs a string {name!r}")
    return value


def _check_format(fmt: object) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type", "audio/pcm") != "audio/pcm":
        raise ProtocolError(
            "only audio/pcm (16-bit, 24 kHz) is supported", code=ErrorCode.UNSUPPORTED
        )
    if fmt.get("rate", RATE) != RATE:
        raise ProtocolError("audio/pcm must be at 24000 Hz", code=ErrorCode.UNSUPPORTED)


def _check_detection(config: object) -> None:
    if not isinstance(config, dict):
        raise ProtocolError("turn_detection must be an object or null")
    kind = config.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ProtocolError(
            "turn_detection.type must be server_vad or semantic_vad", code=ErrorCode.UNSUPPORTED
        )
    if kind == "semantic_vad":
        eagerness = config.get("eagerness", "auto")
        if eagerness not in [e.value for e in Eagerness]:
            raise ProtocolError("turn_detection.eagerness must be low, medium, high or auto")
    silence = config.get("silence_duration_ms", 500)
    if not isinstance(silence, int) or isinstance(silence, bool) or not 100 <= silence <= 10000:
        raise ProtocolError("silence_duration_ms must be an integer from 100 to 10000")
    for flag in ("create_response", "interrupt_response"):
        if not isinstance(config.get(flag, True), bool):
            raise ProtocolError(f"turn_detection.{flag} must be a boolean")


def _user_text(item: dict[str, Any]) -> str:
    """The text of a user message item; other items are not supported."""
    if item.get("type", "message") != "message" or item.get("role") != "user":
        raise ProtocolError(
            "only user messages can be added (no function calls, no system or assistant items)",
            code=ErrorCode.UNSUPPORTED,
        )
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError("a user message needs content")
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise ProtocolError(
                "only input_text content is supported (no images, no input_audio items)",
                code=ErrorCode.UNSUPPORTED,
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise ProtocolError("input_text needs a string text")
        texts.append(text)
    text = "".join(texts).strip()
    if not text:
        raise ProtocolError("the message is empty")
    return text
