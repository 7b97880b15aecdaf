"""The wire protocol, with no server: parsing client frames and building server frames."""

from __future__ import annotations

import base64
import json

import pytest

from live_server.astrbot import frames
from live_server.errors import ErrorCode, ProtocolError


def parse(raw: str | bytes, **kw: object) -> frames.ClientFrame:
    return frames.parse_client_frame(raw, max_text_chars=100, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"t": "text_input", "text": "  hi  "}', frames.TextInput("hi")),
        ('{"t": "text_input", "message": "legacy field"}', frames.TextInput("legacy field")),
        ('{"t": "interrupt"}', frames.Interrupt()),
        ('{"t": "interrupt", "played_ms": 1200}', frames.Interrupt(played_ms=1200)),
        ('{"t": "start_speaking", "stamp": "s1"}', frames.StartSpeaking("s1", 16000)),
        (
            '{"t": "start_speaking", "stamp": 7, "sample_rate": 48000}',
            frames.StartSpeaking(7, 48000),
        ),
        ('{"t": "speaking_part", "data": "AAA="}', frames.SpeakingPart("AAA=")),
        ('{"t": "end_speaking", "stamp": "s1"}', frames.EndSpeaking("s1")),
        ('{"t": "end_speaking"}', frames.EndSpeaking(None)),
        ('{"ct": "live", "t": "interrupt"}', frames.Interrupt()),
    ],
)
def test_valid_frames(raw: str, expected: frames.ClientFrame) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        ("nope", ErrorCode.INVALID_MESSAGE_FORMAT, "JSON"),
        (b'{"t": "interrupt"}', ErrorCode.INVALID_MESSAGE_FORMAT, "binary"),
        ("[]", ErrorCode.INVALID_MESSAGE_FORMAT, "object"),
        ("null", ErrorCode.INVALID_MESSAGE_FORMAT, "object"),
        ('{"t": ""}', ErrorCode.INVALID_MESSAGE_FORMAT, '"t"'),
        ('{"t": ["x"]}', ErrorCode.INVALID_MESSAGE_FORMAT, '"t"'),
        ('{"t": "hello"}', ErrorCode.INVALID_MESSAGE_FORMAT, "unknown"),
        ('{"t": "text_input"}', ErrorCode.INVALID_MESSAGE_FORMAT, "text"),
        ('{"t": "text_input", "text": ""}', ErrorCode.INVALID_MESSAGE_FORMAT, "text"),
        ('{"t": "text_input", "text": ["a"]}', ErrorCode.INVALID_MESSAGE_FORMAT, "text"),
        ('{"t": "text_input", "text": "' + "a" * 101 + '"}', ErrorCode.LIMIT_EXCEEDED, "100"),
        (
            '{"t": "start_speaking", "sample_rate": 4000}',
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "sample_rate",
        ),
        (
            '{"t": "start_speaking", "sample_rate": true}',
            ErrorCode.INVALID_MESSAGE_FORMAT,
            "sample_rate",
        ),
        ('{"t": "start_speaking", "stamp": {}}', ErrorCode.INVALID_MESSAGE_FORMAT, "stamp"),
        ('{"t": "speaking_part", "data": 5}', ErrorCode.INVALID_MESSAGE_FORMAT, "data"),
        ('{"t": "interrupt", "ct": "tv"}', ErrorCode.INVALID_MESSAGE_FORMAT, "ct"),
    ],
)
def test_invalid_frames(raw: str | bytes, code: ErrorCode, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(raw)
    assert info.value.code == code
    assert fragment in info.value.message


def test_text_limit_counts_the_stripped_text() -> None:
    assert parse('{"t": "text_input", "text": "  ' + "a" * 100 + '  "}') == frames.TextInput(
        "a" * 100
    )


def test_channel_selection() -> None:
    chat = parse('{"ct": "chat", "t": "send"}')
    assert isinstance(chat, frames.ChatFrame) and chat.t == "send"
    assert isinstance(parse('{"t": "send"}', default_ct="chat"), frames.ChatFrame)
    # A socket that serves one mode ignores the frame's own ct.
    assert parse('{"ct": "chat", "t": "interrupt"}', force_ct=True) == frames.Interrupt()
    assert parse('{"ct": "bogus", "t": "interrupt"}', force_ct=True) == frames.Interrupt()


def test_server_frames_keep_the_astrbot_shape() -> None:
    assert frames.bot_delta_chunk("He") == {"t": "bot_delta_chunk", "data": {"text": "He"}}
    assert frames.user_msg("hi", 5) == {"t": "user_msg", "data": {"text": "hi", "ts": 5}}
    assert frames.stop_play() == {"t": "stop_play"}
    assert frames.end(interrupted=False) == {"t": "end", "data": {"interrupted": False}}
    err = frames.error_frame(ErrorCode.LLM_ERROR, "boom", turn_id=3)
    assert err == {"t": "error", "data": "boom", "code": "LLM_ERROR", "turn_id": 3}
    resp = frames.response(b"RIFF", sample_rate=22050, duration_ms=10, turn_id=1)
    assert resp["data"] == "UklGRg==" and resp["format"] == "wav" and resp["sample_rate"] == 22050


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4000, 60001])
def test_response_encoding_splices_the_payload_into_valid_json(size: int) -> None:
    wav = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = frames.response(wav, sample_rate=16000, duration_ms=7, turn_id=2)
    decoded = json.loads(frames.encode(frame))
    assert decoded == {
        "t": "response",
        "data": base64.b64encode(wav).decode(),
        "turn_id": 2,
        "format": "wav",
        "sample_rate": 16000,
        "duration_ms": 7,
    }
    assert base64.b64decode(decoded["data"]) == wav


def test_encode_is_compact_json_with_unicode() -> None:
    text = frames.encode(frames.bot_text_chunk("你好。"))
    assert text == '{"t":"bot_text_chunk","data":{"text":"你好。"}}'
    assert json.loads(text)["data"]["text"] == "你好。"
