"""Inputs a hostile or careless client sends: each gets a documented answer, and the
connection and the server stay usable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import (
    chat_until_end,
    deltas,
    open_live,
    recv,
    send,
    text_turn,
    until,
)
from tests.conftest import ServerProcess
from tests.raw_socket import RawSocket, masked_frame

DEEP = "[" * 1000 + "]" * 1000


async def test_valid_json_that_once_broke_the_socket_gets_coded_errors(
    echo_server: ServerProcess,
):
    async with open_live(echo_server.live_url("hal")) as ws:
        # Deep nesting, numbers JSON cannot hold, played_ms out of range.
        for raw in (
            DEEP,
            '{"t": "text_input", "text": "hi", "x": ' + DEEP + "}",
            '{"t": "interrupt", "played_ms": NaN}',
            '{"t": "interrupt", "played_ms": 1e999}',
            '{"t": "interrupt", "played_ms": -Infinity}',
            '{"t": "interrupt", "played_ms": 1e300}',
            '{"t": "start_speaking", "stamp": 1e999}',
        ):
            await send(ws, raw)
            error = await recv(ws)
            assert error["t"] == "error", raw
            assert error["code"] == "INVALID_MESSAGE_FORMAT", (raw, error)
        # A lone surrogate (text cut inside an emoji) is taken, as U+FFFD.
        frames = await text_turn(ws, "cut \ud83d here")
        assert "cut \ufffd here" in deltas(frames)
        frames = await text_turn(ws, "whole 😀 emoji")
        assert "whole 😀 emoji" in deltas(frames)
    # And it was stored as it was said back.
    messages = httpx.get(
        f"{echo_server.http}/api/v1/chat/sessions/{ws.conversation['id']}/messages",
        headers={"Authorization": f"Bearer {echo_server.token('hal')}"},
    )
    assert messages.status_code == 200
    said = [m["content"] for m in messages.json()["messages"] if m["role"] == "user"]
    assert said == ["cut \ufffd here", "whole 😀 emoji"]


async def test_valid_json_that_once_broke_http_gets_coded_errors(echo_server: ServerProcess):
    token = echo_server.token("hal")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=echo_server.http, timeout=30) as http:
        for path in ("/api/auth/login", "/api/v1/chat", "/v1/chat/completions"):
            for body in (DEEP, '{"x": NaN}', '{"x": 1e999}'):
                r = await http.post(path, content=body, headers=auth)
                assert r.status_code == 400, (path, body, r.text)
                assert r.json()["error"]["code"] == "INVALID_MESSAGE_FORMAT", (path, r.text)
        # A lone surrogate in a chat message: accepted, replaced, and the stream is whole.
        body = json.dumps({"message": "cut \ud83d here", "enable_streaming": False})
        r = await http.post("/api/v1/chat", content=body, headers=auth)
        assert r.status_code == 200, r.text
        assert "cut \ufffd here" in r.text and '"type":"end"' in r.text.replace(" ", "")
        completion = json.dumps(
            {"model": "echo", "messages": [{"role": "user", "content": "x \udc00 y"}]}
        )
        r = await http.post("/v1/chat/completions", content=completion, headers=auth)
        assert r.status_code == 200, r.text
        assert "x \ufffd y" in r.json()["choices"][0]["message"]["content"]
        # Paging far beyond any history is a 400, not a 500.
        for query in ("page=99999999999999999999", "page=1&page_size=9" + "9" * 30, "page=1e3"):
            r = await http.get(f"/api/v1/chat/sessions?{query}", headers=auth)
            assert r.status_code == 400, (query, r.text)
    assert "Traceback" not in echo_server.logs()


async def test_a_burst_of_mistakes_is_answered_and_not_taken_for_a_slow_client(
    server_factory,
):
    # A small outbox, so that the burst is many times what it holds.
    server: ServerProcess = server_factory(LIVE_OUTBOX_FRAMES="4", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        burst = 300
        for i in range(burst):
            await send(ws, {"t": f"nonsense-{i}"} if i % 2 else "not json")
        errors = [await recv(ws) for _ in range(burst)]
        assert {e["code"] for e in errors} == {"INVALID_MESSAGE_FORMAT"}
    # Chat binds in a burst too: each answered, in order.
    async with open_live(server.unified_url()) as ws:
        for i in range(100):
            await send(ws, {"ct": "chat", "t": "bind", "session_id": f"none-{i}"})
        answers = [await recv(ws) for _ in range(100)]
        assert [a["session_id"] for a in answers] == [f"none-{i}" for i in range(100)]
        await send(ws, {"ct": "live", "t": "text_input", "text": "still here?"})
        assert "still here?" in deltas(await until(ws, "end"))
    assert "Client is not reading" not in server.logs()


async def test_a_chat_send_and_its_interrupt_in_one_read_end_and_are_saved(
    echo_server: ServerProcess,
):
    async with open_live(echo_server.unified_url("ivy")) as ws:
        for i in range(5):
            message_id = f"quick-{i}"
            send_frame = {
                "ct": "chat",
                "t": "send",
                "session_id": "quick",
                "message_id": message_id,
                "message": f"never mind {i}",
            }
            stop = {"ct": "chat", "t": "interrupt", "message_id": message_id}
            # One write: both frames reach the server together.
            await ws.send(json.dumps(send_frame))
            await ws.send(json.dumps(stop))
            frames = await chat_until_end(ws, message_id)
            end = frames[-1]
            assert end["type"] == "end" and end["data"] == "" and end["interrupted"] is True
            assert "message_saved" in [f["type"] for f in frames]
        # The ids are free again.
        await send(ws, {**send_frame, "message_id": "quick-0", "message": "now finish"})
        frames = await chat_until_end(ws, "quick-0")
        assert frames[-1]["interrupted"] is False
    async with open_live(echo_server.live_url("ivy") + "&conversation_id=quick") as live:
        assert live.conversation["messages"] == 12


async def test_invalid_utf8_in_a_text_frame_closes_1007_quietly(echo_server: ServerProcess):
    before = echo_server.logs().count("Traceback")
    for _ in range(3):
        async with open_live(echo_server.live_url("uma")) as ws:
            await ws.send(b'{"t": "text_input", "text": "\xff\xfe"}', text=True)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(recv(ws), 10)
        assert ws.close_code == 1007
    assert echo_server.logs().count("Traceback") == before
    async with open_live(echo_server.live_url("uma")) as ws:
        assert "ok" in deltas(await text_turn(ws, "ok"))


# --- clients that break the connection, or leave without a word --------------------------

ENDS_THE_CONNECTION = {
    "over the size limit": (b'{"t": "text_input", "text": "' + b"x" * 200_000 + b'"}', 1009),
    "invalid UTF-8": (b'{"t": "text_input", "text": "\xff\xfe"}', 1007),
}
HOSTILE = masked_frame(b'{"t": "text_input", "message": "zero\xe2\x80\x8bwidth", "junk": NaN}')


@pytest.fixture(scope="module")
def frame_limited(server_factory) -> ServerProcess:
    return server_factory(LIVE_ECHO_DELAY_MS="5", LIVE_MAX_FRAME_BYTES="100000")


def socket_urls(server: ServerProcess) -> dict[str, str]:
    key = server.cli("apikey", "create", "--name", "hostile")
    return {
        "live": server.live_url("vic"),
        "unified": server.unified_url("vic"),
        "api key": f"{server.ws}/api/v1/live/ws?api_key={key}&username=vic",
        "realtime": f"{server.ws}/v1/realtime?api_key={key}",
    }


@pytest.mark.parametrize("frame, code", ENDS_THE_CONNECTION.values(), ids=ENDS_THE_CONNECTION)
async def test_a_frame_that_ends_the_connection_amid_others_still_gets_its_close_frame(
    frame_limited: ServerProcess, frame: bytes, code: int
):
    """A client that goes on writing after such a frame (a fuzzer; a client whose writer runs
    ahead of its reader) still reads why it was cut off: the close frame is not lost to a TCP
    reset of the bytes it had not read yet, on any socket."""
    before = frame_limited.logs().count("Traceback")
    for name, url in socket_urls(frame_limited).items():
        for attempt in range(3):
            raw = await RawSocket.open(url)
            reading = asyncio.create_task(raw.read_until_closed())
            for i in range(2000):
                if not await raw.send_raw(masked_frame(frame) if i == 20 else HOSTILE):
                    break
            with contextlib.suppress(OSError):
                raw.writer.write_eof()  # done writing, as a client is once it reads the close
            await asyncio.wait_for(reading, 30)
            raw.writer.close()
            assert raw.close is not None, (name, attempt, "no close frame")
            assert raw.close.code == code, (name, attempt, raw.close)
    assert frame_limited.logs().count("Traceback") == before
    async with open_live(frame_limited.live_url("vic")) as ws:
        assert "fine" in deltas(await text_turn(ws, "fine"))


async def test_clients_that_vanish_at_any_moment_leave_no_traceback(server_factory):
    """Clients reset their connection mid-turn, mid-chat-reply, mid-response and mid-stream,
    at seeded random moments: each leaves one quiet line, never a traceback."""
    server: ServerProcess = server_factory(LIVE_ECHO_DELAY_MS="5")
    urls = socket_urls(server)
    story = "tell me a long story about the sea and the ships on it " * 4
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": story}]}
    starts = {
        "live": [{"t": "text_input", "text": story}],
        "unified": [{"ct": "chat", "t": "send", "message": story}],
        "api key": [{"t": "text_input", "text": story}],
        "realtime": [
            {"type": "conversation.item.create", "item": item},
            {"type": "response.create"},
        ],
    }
    rng = random.Random(28)

    async def vanish_from_socket(name: str) -> None:
        raw = await RawSocket.open(urls[name])
        for frame in starts[name]:
            await raw.send_raw(masked_frame(json.dumps(frame).encode()))
        # Somewhere in the reply: after the greeting and a seeded number of its frames.
        wanted = 2 + rng.randrange(16)
        while len(raw.texts) < wanted:
            data = await asyncio.wait_for(raw.reader.read(1 << 16), 30)
            assert data, (name, raw.texts)
            raw.protocol.receive_data(data)
            raw.texts += [e.data.decode() for e in raw.protocol.events_received()]
        raw.reset()

    async def vanish_from_stream(path: str, body: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        payload = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: live\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {server.token('vic')}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        for _ in range(1 + rng.randrange(8)):  # somewhere in the stream
            assert await asyncio.wait_for(reader.read(256), 30), path
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def vanish_in_handshake() -> None:
        raw = await RawSocket.open(urls[rng.choice(list(urls))])
        raw.reset()  # before the socket's first frame

    completion = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": story}]}
    vanishing = [
        *(vanish_from_socket(name) for name in urls for _ in range(6)),
        *(vanish_from_stream("/api/v1/chat", {"message": story}) for _ in range(6)),
        *(vanish_from_stream("/v1/chat/completions", completion) for _ in range(6)),
        *(vanish_in_handshake() for _ in range(6)),
    ]
    await asyncio.gather(*vanishing)
    # Each socket's end is logged once its turns are stopped and saved: wait for all of them.
    logs = await server.logged(" disconnected", times=6 * len(urls) + 6)
    assert "Traceback" not in logs
    assert " ERROR " not in logs
    async with open_live(server.live_url("vic")) as ws:
        assert "still" in deltas(await text_turn(ws, "still here"))
