"""The floors: bare servers (Starlette + uvicorn served as `live-server serve` serves, and a bare
`websockets` echo) and the round trips measured on them. They answer with canned frames, built
by our encoders alone: nothing of the live server's pipeline may run here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from .harness import PROMPT, Proc, free_port

BENCH = Path(__file__).resolve().parent.parent / "bench.py"  # runs these servers by flag


def serve_starlette_echo(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from live_server.astrbot import frames
    from live_server.core import events
    from live_server.realtime.codec import RealtimeCodec
    from live_server.settings import Settings

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            pass

    async def turn_floor(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                text = json.loads(await ws.receive_text())["text"]
                await ws.send_text(frames.encode(frames.metrics({"input_type": "text"}, turn_id=1)))
                await ws.send_text(
                    frames.encode(frames.user_msg(text, int(time.time() * 1000), turn_id=1))
                )
                await ws.send_text(frames.encode(frames.bot_delta_chunk("You", turn_id=1)))
        except WebSocketDisconnect:
            pass

    async def realtime_floor(ws: WebSocket) -> None:
        """The Realtime events of a text reply's first delta, and nothing else, encoded once by
        our codec and replayed: a user item is answered with its two events, `response.create`
        with the response's four opening events and the delta, then its close (which the
        client waits for before the next)."""
        await ws.accept()
        codec = RealtimeCodec(audio=False)
        item = codec.encode(events.InputAdded(1, "text", PROMPT))
        response = [
            *codec.encode(events.TurnStarted(1, "text", PROMPT, {"input_type": "text"})),
            *codec.encode(events.TextDelta(1, "You")),
            *codec.encode(events.Ended(1, interrupted=False, assistant="You")),
        ]
        answers = {"session.update": [codec.dump({"type": "session.updated"})]}
        answers["conversation.item.create"] = item
        try:
            while True:
                event = json.loads(await ws.receive_text())
                for frame in answers.get(event["type"], response):
                    await ws.send_text(frame)
        except WebSocketDisconnect:
            pass

    settings = Settings.from_env({"LIVE_DATA_DIR": tempfile.gettempdir()})
    routes = [
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/turn", turn_floor),
        WebSocketRoute("/realtime", realtime_floor),
    ]
    # The same uvicorn settings as `live-server serve` (live_server/cli.py).
    uvicorn.run(
        Starlette(routes=routes),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_deflate,
    )


def serve_websockets_echo(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port) as server:
            await server.serve_forever()

    asyncio.run(main())


def bare_server() -> Proc:
    """The bare Starlette + uvicorn server of the floors (`serve_starlette_echo`)."""
    port = free_port()
    args = [sys.executable, str(BENCH), "--serve-starlette", str(port)]
    return Proc(args, dict(os.environ), port, f"ws://127.0.0.1:{port}/echo")


def reference_server() -> Proc:
    """The bare `websockets` echo server, for reference (`serve_websockets_echo`)."""
    port = free_port()
    args = [sys.executable, str(BENCH), "--serve-websockets", str(port)]
    return Proc(args, dict(os.environ), port, f"ws://127.0.0.1:{port}/")


async def echo_round_trips(url: str, n: int) -> list[float]:
    frame = json.dumps({"t": "text_input", "text": PROMPT})
    out = []
    async with connect(url, max_size=None) as ws:
        for _ in range(20):  # warm-up
            await ws.send(frame)
            await ws.recv()
        for _ in range(n):
            t0 = time.perf_counter()
            await ws.send(frame)
            await ws.recv()
            out.append(time.perf_counter() - t0)
    return out


async def turn_floor_round_trips(url: str, n: int) -> list[float]:
    frame = json.dumps({"t": "text_input", "text": PROMPT})
    out = []
    async with connect(url, max_size=None) as ws:
        for i in range(n + 20):
            t0 = time.perf_counter()
            await ws.send(frame)
            for _ in range(3):
                json.loads(await ws.recv())
            if i >= 20:
                out.append(time.perf_counter() - t0)
    return out


async def after_audio_round_trips(url: str, n: int, audio_frame_chars: int) -> list[float]:
    big = json.dumps({"t": "response", "data": "A" * audio_frame_chars})
    small = json.dumps({"t": "interrupt"})
    out = []
    async with connect(url, max_size=None) as ws:
        for i in range(n + 5):
            await ws.send(big)
            json.loads(await ws.recv())
            t0 = time.perf_counter()
            await ws.send(small)
            await ws.recv()
            if i >= 5:
                out.append(time.perf_counter() - t0)
    return out
