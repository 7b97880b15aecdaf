"""A client that stops reading cannot make the server buffer without bound."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.client import deltas, open_live, recv, send, text_turn
from tests.conftest import ServerProcess


async def wait_for_log(server: ServerProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.logs()}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def stalled_client(server: ServerProcess) -> AsyncIterator[ClientConnection]:
    """A client that asks for a long reply (many sentences of audio, far more than the socket
    buffers hold) and reads none of it, until the server has cut it off."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    async with open_live(server.live_url(), sock=sock, max_queue=1) as stalled:
        await send(stalled, {"t": "text_input", "text": "blah " * 700})
        await wait_for_log(server, "Client is not reading")
        yield stalled


async def test_a_client_that_stops_reading_is_disconnected(server_factory) -> None:
    server: ServerProcess = server_factory(
        LIVE_SEND_TIMEOUT_S="2", LIVE_OUTBOX_FRAMES="4", LIVE_ECHO_DELAY_MS="0"
    )
    async with stalled_client(server) as stalled:
        # The stalled connection was closed: reading now (within LIVE_SEND_TIMEOUT_S of being
        # cut off) drains what was buffered, then the 1013 close frame.
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    await recv(stalled)
    assert stalled.close_code == 1013, stalled.close_code
    # The server and other clients are unaffected.
    async with open_live(server.live_url()) as ws:
        frames = await text_turn(ws, "are you ok?")
    assert "are you ok?" in deltas(frames)


async def test_a_client_back_from_a_pause_finds_its_close_frame(server_factory) -> None:
    """A client that was away (a laptop lid, a stalled thread) and reads again after being cut
    off finds, after what was buffered, the 1013 close frame that says why."""
    timeout = 3.0
    server: ServerProcess = server_factory(
        LIVE_SEND_TIMEOUT_S=str(timeout), LIVE_OUTBOX_FRAMES="4", LIVE_ECHO_DELAY_MS="0"
    )
    async with stalled_client(server) as stalled:
        # Still away for a while after being cut off: what this test is about, not a wait for
        # the server (the server once gave the close frame 1 s and then dropped it).
        await asyncio.sleep(timeout / 2)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    await recv(stalled)
    assert stalled.close_code == 1013, stalled.close_code
    assert stalled.close_reason == "Client is not reading"
