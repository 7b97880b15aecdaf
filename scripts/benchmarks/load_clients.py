"""The load test's client processes: many live sockets doing text turns, each an asyncio
protocol that reads the server's frames itself (cheaper than a task a socket), reporting what
it measured on stdout. No server here: `benchmarks.load` starts them."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

PROMPT = b'{"t":"text_input","text":"What is the weather like in Paris today?"}'
DELTA = b'{"t":"bot_delta_chunk"'
END = b'{"t":"end"'
ERROR = b'{"t":"error"'
TEXT, CLOSE, PING = 1, 8, 9  # opcodes of the server's frames
CONNECTS_AT_ONCE = 64  # per client process: a burst of handshakes, not a SYN flood


class Socket(asyncio.Protocol):
    """One live socket doing turns: callbacks rather than a task each. The library makes the
    handshake and the frames we send; once open, the server's frames are read here: they are
    unmasked and whole (uvicorn never fragments a message), and the library's general parser
    was a third of the client's CPU, taken from the server on a 2-core machine."""

    def __init__(self, run: Run, url: str, key: str) -> None:
        self.run = run
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_at = 0.0
        self.first_at = 0.0
        self.in_turn = False
        self.open = False  # past the handshake: frames are parsed by `_frames`
        self.pending = b""  # the start of a frame not all received yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        request = self.ws.connect()
        request.headers["X-API-Key"] = self.key
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.open:
            self._frames(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._frame(event.data, 0)
            elif isinstance(event, Response) and not self.opened.done():
                if event.status_code == 101:
                    self.open = True
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(f"HTTP {event.status_code}"))
        self._flush()

    def _frames(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        at, end = 0, len(buf)
        while end - at >= 2:
            opcode, size, head = buf[at] & 0x0F, buf[at + 1] & 0x7F, 2
            if size == 126:
                size, head = int.from_bytes(buf[at + 2 : at + 4]), 4
            elif size == 127:
                size, head = int.from_bytes(buf[at + 2 : at + 10]), 10
            if end - at < head + size:
                break
            start, at = at + head, at + head + size
            if opcode == TEXT:
                self._frame(buf, start)
            elif opcode == PING:
                self.ws.send_pong(buf[start:at])
                self._flush()
            elif opcode == CLOSE and self.transport is not None:
                self.transport.close()  # our close frame went first, or the server ends it
        self.pending = buf[at:]

    def _frame(self, data: bytes, start: int) -> None:
        now = time.monotonic()
        if data.startswith(DELTA, start):
            if self.in_turn and not self.first_at:
                self.first_at = now
        elif data.startswith(END, start):
            if self.in_turn:
                self.in_turn = False
                self.run.turn_ended(self, now)
        elif data.startswith(ERROR, start):
            self.run.errors += 1

    def send_turn(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if time.monotonic() >= self.run.to_t:  # the window is over: no new turn
            return
        self.sent_at, self.first_at, self.in_turn = time.monotonic(), 0.0, True
        self.ws.send_text(PROMPT)
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_close(1000)
            self._flush()

    def _flush(self) -> None:
        data = self.ws.data_to_send()
        if data and self.transport is not None:
            self.transport.write(b"".join(data))
        if self.ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed in the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.run.closing:
            self.run.lost += 1


class Run:
    """A client process's sockets and what they measured."""

    def __init__(self, think_s: float) -> None:
        self.think_s = think_s
        self.loop = asyncio.get_running_loop()
        self.sockets: list[Socket] = []
        self.go_at = self.from_t = self.to_t = 0.0
        self.first: list[float] = []  # first-delta latencies of the turns sent in the window
        self.ended = 0  # turns ended in the window
        self.errors = self.lost = 0
        self.closing = False

    def think(self) -> float:
        return self.think_s * random.uniform(0.5, 1.5)

    def start(self) -> None:
        for s in self.sockets:
            delay = max(0.0, self.go_at - time.monotonic()) + random.uniform(0, self.think_s)
            self.loop.call_later(delay, s.send_turn)

    def turn_ended(self, s: Socket, now: float) -> None:
        if self.from_t <= now < self.to_t:
            self.ended += 1
        if self.from_t <= s.sent_at < self.to_t and s.first_at:
            self.first.append(s.first_at - s.sent_at)
        if now < self.to_t:
            self.loop.call_later(self.think(), s.send_turn)


async def client_main(config: dict[str, Any]) -> None:
    """Open the sockets, say so, wait for the window, run it, report, close."""
    run = Run(config["think_s"])
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    failed = 0

    async def open_one(i: int) -> None:
        nonlocal failed
        url = f"{config['url']}?username=load{config['first'] + i}"
        async with gate:
            try:
                _, s = await loop.create_connection(
                    lambda: Socket(run, url, config["key"]), "127.0.0.1", config["port"]
                )
                await asyncio.wait_for(s.opened, 30)
                run.sockets.append(s)
            except (TimeoutError, OSError):
                failed += 1

    await asyncio.gather(*(open_one(i) for i in range(config["sockets"])))
    print(json.dumps({"connected": len(run.sockets), "failed": failed}), flush=True)
    go = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    run.go_at, run.from_t, run.to_t = go["go_at"], go["from"], go["to"]
    run.start()
    await asyncio.sleep(max(0.0, run.from_t - time.monotonic()))
    cpu = time.process_time()
    await asyncio.sleep(max(0.0, run.to_t - time.monotonic()))
    cpu = time.process_time() - cpu
    # Turns sent in the window are waited for (up to 10 s) so that their latency is counted.
    deadline = time.monotonic() + 10
    while any(s.in_turn and s.sent_at < run.to_t for s in run.sockets):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    unfinished = sum(s.in_turn for s in run.sockets)
    report = {
        "first": run.first,
        "ended": run.ended,
        "errors": run.errors,
        "lost": run.lost,
        "unfinished": unfinished,
        "cpu_s": cpu,
    }
    print(json.dumps(report), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the server's RSS is read meanwhile
    run.closing = True
    for s in run.sockets:
        s.close()
    if run.sockets:
        await asyncio.wait([asyncio.ensure_future(s.closed) for s in run.sockets], timeout=10)
