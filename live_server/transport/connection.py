"""A socket's I/O: one reader loop, one writer task, a bounded outbox, and the close. The only
place that reads from or writes to a client's socket.

The connection knows no wire format and no conversation. It hands each frame the client sends
to its `Handler` (a protocol's adapter over the session logic) and writes what the handler
queues, encoded by the protocol's codec. It is the one place that decides to close: the client
left, stopped reading, or was ended from outside (its key was revoked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from live_server.core import events
from live_server.core.output import Droppable
from live_server.errors import CloseCode, ErrorCode, LiveError
from live_server.settings import Settings
from live_server.transport.codec import Codec
from live_server.transport.outbox import Outbox, OutboxOverflow, Outgoing

log = logging.getLogger(__name__)
# What writing to a client that has gone away (a reset, a closed tab) raises: Starlette's
# disconnect, which wraps the server's `OSError`, or that `OSError` itself where Starlette does
# not wrap it (the accept). A client leaving is a normal event, never a traceback.
CLIENT_GONE = (WebSocketDisconnect, OSError)
# Control frames (errors, answers to requests) that may wait for the client before the reader
# takes its next frame.
CONTROL_BACKLOG = 16
OnSent = Callable[[], None]


class Handler(Protocol):
    """A protocol's view of the connection: takes frames, reports what went wrong."""

    def receive(self, raw: str | bytes) -> Awaitable[None] | None:
        """Act on one client frame; what the reader must await before the next, if anything.
        Raises `LiveError` for a frame it refuses."""
        ...

    def refuse(self, error: LiveError) -> None:
        """Tell the client why a frame was refused."""
        ...

    async def aclose(self) -> None:
        """The client is gone: stop every turn, and save what must be saved."""
        ...


class Connection:
    def __init__(self, ws: WebSocket, codec: Codec, settings: Settings, *, name: str) -> None:
        self.ws = ws
        self.codec = codec
        self.settings = settings
        self.name = name  # who is on the other end, for the log
        self.outbox = Outbox(settings.outbox_frames)
        self._overflow: OutboxOverflow | None = None
        # The turn whose first text delta, and first audio, was last queued (`_wakes`).
        self._first_sent: dict[type, int] = {}
        # When the frame being written started to go out (None between batches), and the one
        # timer that checks it has not waited too long (`_watch_send`).
        self._sending_since: float | None = None
        self._send_watch: asyncio.TimerHandle | None = None
        # Set by `end`: the close code, its reason, and an event to send before closing.
        self._ended: asyncio.Future[tuple[CloseCode, str, events.Event | None]] = (
            asyncio.get_running_loop().create_future()
        )

    # --- what the session sends ------------------------------------------------------------

    async def send(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None:
        """Queue an event's frames, waiting for room: a turn goes at the client's pace."""
        for item in self._items(event, turn, on_sent):
            await self.outbox.put(item)

    def send_now(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None:
        """Queue without waiting: control frames, and the first frames of a turn."""
        for item in self._items(event, turn, on_sent):
            self.outbox.put_control(item)

    def send_when(self, event: events.Event, ready: Awaitable[events.Event | None]) -> None:
        """Queue an event whose frames leave only once `ready` is done (a turn's end waits for
        its save), preceded by the event it gives, if any (why the save failed)."""
        codec = self.codec

        async def gate() -> list[str]:
            before = await ready
            return [] if before is None else codec.encode(before)

        items = self._items(event, None, None)
        if items:
            items[0].gate = gate
        for item in items:
            self.outbox.put_control(item)

    def refuse(self, error: LiveError) -> None:
        self.send_now(events.Failed(error.code, error.message))

    async def send_text(self, text: str) -> None:
        """An already encoded frame, waiting for room."""
        await self.outbox.put(Outgoing(text))

    def send_text_now(self, text: str) -> None:
        """An already encoded frame, without waiting; a client too far behind is closed."""
        try:
            self.outbox.put_control(Outgoing(text))
        except OutboxOverflow as exc:
            self._overflow = exc  # the writer closes the connection

    def _items(
        self, event: events.Event, turn: Droppable | None, on_sent: OnSent | None
    ) -> list[Outgoing]:
        items = [Outgoing(text, turn=turn) for text in self.codec.encode(event)]
        if items:
            items[-1].on_sent = on_sent
            items[-1].wake = self._wakes(event)
        elif on_sent is not None:
            on_sent()  # nothing to send: it is as good as sent
        return items

    def _wakes(self, event: events.Event) -> bool:
        """Whether the client is waiting on this event to act at once: `Stopped`, and a turn's
        first text and first audio."""
        if isinstance(event, events.Stopped):
            return True
        if isinstance(event, events.TextDelta | events.SpokenAudio):
            kind = type(event)
            if self._first_sent.get(kind) != event.turn_id:
                self._first_sent[kind] = event.turn_id
                return True
        return False

    def discard_stale(self) -> None:
        self.outbox.discard_stale()

    # --- life cycle -------------------------------------------------------------------------

    def end(self, code: CloseCode, reason: str, error: events.Event | None = None) -> None:
        """End the connection from outside (its credential was revoked): `error` is sent, the
        turns stop as on a disconnect, and the socket is closed with `code`."""
        if not self._ended.done():
            self._ended.set_result((code, reason, error))

    async def serve(self, handler: Handler) -> None:
        """Serve the connection until the client leaves, stops reading, or is ended."""
        reader = asyncio.create_task(self._read_loop(handler), name="live-reader")
        writer = asyncio.create_task(self._write_loop(), name="live-writer")
        ended = self._ended
        close: tuple[CloseCode, str] | None = None
        last: events.Event | None = None
        try:
            waiting: set[asyncio.Future[Any]] = {reader, writer, ended}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            error = next(
                (t.exception() for t in done if t is not ended and t.exception() is not None),
                None,
            )
            if ended in done:
                code, reason, last = ended.result()
                close = (code, reason)
            elif isinstance(error, OutboxOverflow):
                log.warning("Client is not reading; closing %s's connection: %s", self.name, error)
                close = (CloseCode.TRY_AGAIN_LATER, "Client is not reading")
            elif error is not None:
                log.error("connection of %s failed", self.name, exc_info=error)
                close = (CloseCode.INTERNAL_ERROR, "Internal error")
        finally:
            if self._send_watch is not None:
                self._send_watch.cancel()
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            self.outbox.close()  # nothing more will be written; producers must not wait
            await handler.aclose()
        if close is not None:  # with the turns stopped: waiting for the client costs nothing
            await self._close(*close, last=last)

    async def _close(self, code: CloseCode, reason: str, *, last: events.Event | None) -> None:
        """Send the close frame. A client that stopped reading takes it only once it reads
        again: it is given as long as any frame (`LIVE_SEND_TIMEOUT_S`), so that one that was
        only away for a while learns why it was cut off; after that the connection is ended
        without it."""

        async def close() -> None:
            if last is not None:
                for text in self.codec.encode(last):
                    await self.ws.send_text(text)
            await self.ws.close(code, reason)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), self.settings.send_timeout_s)

    async def _read_loop(self, handler: Handler) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes", b"")
            try:
                pending = handler.receive(raw)
                if pending is not None:
                    await pending
            except LiveError as exc:
                handler.refuse(exc)
            except OutboxOverflow:
                raise
            except Exception:  # a bug must cost one frame its answer, not the connection
                log.exception("a frame from %s could not be handled", self.name)
                handler.refuse(
                    LiveError("the frame could not be handled", code=ErrorCode.INTERNAL_ERROR)
                )
            await self.outbox.control_room(CONTROL_BACKLOG)

    async def _write_loop(self) -> None:
        try:
            await self._write_all()
        except CLIENT_GONE:
            log.debug("%s went away while frames were being sent to them", self.name)

    async def _write_all(self) -> None:
        while True:
            await self.outbox.wait()
            if self._overflow is not None:
                raise self._overflow
            # Everything queued goes out in one wake-up.
            wake = False
            while (item := self.outbox.pop()) is not None:
                if item.turn is not None and item.turn.interrupted:
                    continue
                if item.gate is not None:
                    self._sending_since = None  # the client is not slow while we wait
                    for text in await item.gate():
                        await self._send(text)
                await self._send(item.text)
                wake = wake or item.wake
                if item.on_sent is not None:
                    item.on_sent()
            self._sending_since = None
            if wake:
                _yield_cpu()

    async def _send(self, text: str) -> None:
        self._watch_send()
        await self.ws.send_text(text)

    def _watch_send(self) -> None:
        """A frame starts to go out: one that waits over `LIVE_SEND_TIMEOUT_S` ends the
        connection. One timer per connection, armed only while frames go out and pushed on
        when it fires, rather than one per batch: under load a batch is about one frame, and
        making and cancelling a timer for each was a tenth of a worker's CPU at saturation."""
        loop = asyncio.get_running_loop()
        self._sending_since = loop.time()
        if self._send_watch is None:
            self._send_watch = loop.call_at(
                self._sending_since + self.settings.send_timeout_s, self._check_send
            )

    def _check_send(self) -> None:
        self._send_watch = None
        since, limit = self._sending_since, self.settings.send_timeout_s
        if since is None:
            return  # between batches: the next frame arms it again
        loop = asyncio.get_running_loop()
        if loop.time() - since < limit:
            self._send_watch = loop.call_at(since + limit, self._check_send)
            return
        log.warning(
            "Client is not reading; closing %s's connection: a frame waited over %g s to be sent",
            self.name,
            limit,
        )
        self.end(CloseCode.TRY_AGAIN_LATER, "Client is not reading")


def _yield_cpu() -> None:
    """Let whoever the frames just woke run now. Linux wakes a reader on the writer's own CPU
    when they share a host (a local client, an integrator's backend on loopback): without
    this, that reader waits until our turn's next step is done, so an interrupt's `stop_play`
    reached a local client only after the cancelled turn had been torn down (bench: 0.6 ms
    rather than 1.2), and a turn's first delta sometimes only with the rest of the reply (p99
    4 ms rather than 1.3). Only after frames the client acts on at once (`_wakes`): yielding
    after every batch gave the CPU away thousands of times a second under load, and 1,000
    sockets on two workers waited for it (first delta p99 37-154 ms, against 12-35 ms)."""
    if _sched_yield is not None:
        _sched_yield()


_sched_yield = getattr(os, "sched_yield", None)  # not on Windows
