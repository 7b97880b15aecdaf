"""Property-based fuzzing (hypothesis) of the protocol parser, the sockets and the HTTP API:
whatever a client sends gets a documented answer, and the connection stays usable."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection

from live_server.astrbot import frames
from live_server.errors import ErrorCode, ProtocolError
from tests.client import open_live, recv
from tests.conftest import ServerProcess

T = TypeVar("T")
CODES = {code.value for code in ErrorCode}
# What a live socket may send back (docs/live-api/README.md, "Server frames").
SERVER_FRAMES = {
    "conversation", "metrics", "user_msg", "user_partial", "speech_started", "speech_stopped",
    "bot_delta_chunk", "bot_text_chunk", "response", "bot_msg", "stop_play", "end", "error",
}  # fmt: skip
FIELDS = (
    "text", "message", "played_ms", "stamp", "sample_rate", "data", "ct", "session_id",
    "message_id", "enable_streaming",
)  # fmt: skip
FRAME_TYPES = (
    "text_input", "interrupt", "start_speaking", "speaking_part", "end_speaking", "bind", "send",
)  # fmt: skip

# Any character, lone surrogates and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
numbers = st.integers(min_value=-(10**30), max_value=10**30) | st.floats()
scalars = st.none() | st.booleans() | numbers | any_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
# Frames of every type, with fields of every kind (most of them wrong).
any_frame = st.fixed_dictionaries(
    {"t": st.sampled_from(FRAME_TYPES) | any_text},
    optional={name: json_values for name in FIELDS},
)
deep = st.integers(min_value=30, max_value=3000).map(lambda n: "[" * n + "]" * n)


def as_sent(value: Any) -> str:
    """JSON as a browser's `JSON.stringify` writes it: lone surrogates escaped, and (beyond
    what it writes, as a careless client might) NaN and Infinity."""
    return json.dumps(value, allow_nan=True)


# What can travel in a text frame or a body: lone surrogates only as JSON escapes (a raw one
# is not UTF-8: a socket closes with 1007 for it, tested apart).
wire_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
raw_frames = any_frame.map(as_sent) | json_values.map(as_sent) | deep | wire_text


@settings(max_examples=2000, deadline=None)
@given(raw_frames | any_text, st.sampled_from(["live", "chat"]), st.booleans())
def test_the_parser_answers_anything_with_a_frame_or_a_protocol_error(
    raw: str, ct: frames.ChannelType, force: bool
):
    try:
        frame = frames.parse_client_frame(raw, max_text_chars=100, default_ct=ct, force_ct=force)
    except ProtocolError as exc:
        assert exc.code.value in CODES and exc.message
        return
    if isinstance(frame, frames.ChatFrame):
        try:
            frames.parse_chat_frame(frame, max_text_chars=100)
        except ProtocolError as exc:
            assert exc.code.value in CODES
    # Whatever was accepted can be stored and sent back as UTF-8: no lone surrogate, no NaN.
    # (The frames are slotted dataclasses: `asdict`, not `vars`, reaches their fields.)
    json.dumps(dataclasses.asdict(frame), ensure_ascii=False, allow_nan=False).encode()
    frames.encode(frames.user_msg(getattr(frame, "text", "x"), 0)).encode()


class SocketThread:
    """One live socket, held open across hypothesis' examples on a loop of its own."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._exit = asyncio.Event()
        self.ws: ClientConnection | None = None
        ready = threading.Event()

        async def hold() -> None:
            async with open_live(url) as ws:
                self.ws = ws
                ready.set()
                await self._exit.wait()

        self._held = asyncio.run_coroutine_threadsafe(hold(), self.loop)
        assert ready.wait(30), "the socket did not open"

    def run(self, coro: Callable[[ClientConnection], Coroutine[Any, Any, T]]) -> T:
        assert self.ws is not None
        return asyncio.run_coroutine_threadsafe(coro(self.ws), self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._exit.set)
        self._held.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def fuzz_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none", LIVE_MAX_TEXT_CHARS="200")


@pytest.fixture(scope="module")
def socket_thread(fuzz_server: ServerProcess) -> Iterator[SocketThread]:
    held = SocketThread(fuzz_server.unified_url("fuzz"))
    yield held
    held.close()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=raw_frames, probe=st.integers(min_value=0, max_value=10**9))
def test_the_socket_answers_anything_and_stays_usable(
    socket_thread: SocketThread, raw: str, probe: int
):
    """Each fuzzed frame is followed by a probe the server must answer: everything up to that
    answer is a documented frame, and the probe's answer shows the connection is usable."""

    async def exchange(ws: ClientConnection) -> list[dict[str, Any]]:
        await ws.send(raw)
        await ws.send(json.dumps({"ct": "live", "t": f"probe-{probe}"}))
        got: list[dict[str, Any]] = []
        while True:
            frame = await recv(ws)
            got.append(frame)
            if frame.get("t") == "error" and f"probe-{probe}" in str(frame.get("data")):
                return got

    got = socket_thread.run(exchange)
    for frame in got:
        kind = frame.get("type") if frame.get("ct") == "chat" else frame.get("t")
        assert isinstance(kind, str), frame
        if frame.get("ct") != "chat":
            assert kind in SERVER_FRAMES, frame
        if kind == "error":
            assert frame["code"] in CODES, frame
            assert frame["code"] != "INTERNAL_ERROR", frame


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/api/auth/login", "/api/v1/chat", "/v1/chat/completions"]),
    body=raw_frames,
)
def test_the_http_api_answers_anything_with_a_documented_status(
    fuzz_server: ServerProcess, path: str, body: str
):
    headers = {"Authorization": f"Bearer {fuzz_server.token('fuzz')}"}
    if path == "/api/auth/login":
        headers = {}
    response = httpx.post(f"{fuzz_server.http}{path}", content=body, headers=headers, timeout=60)
    assert response.status_code in (200, 400, 401, 403, 404, 413, 429), response.text
    if response.status_code != 200:
        assert response.json()["error"]["code"] in CODES
