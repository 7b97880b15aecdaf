"""What one server process tells the others: Redis publish/subscribe (`LIVE_REDIS_URL`).

The feed and the chat hub deliver in their own process first, then publish the same event
here; every other process hears it and delivers it to its own sockets. Without Redis the bus
is a no-op and the process is alone, as it is by default.

A Redis outage never stops a socket: publishing is fire and forget (what could not be sent is
counted), and the listener reconnects with a growing pause. The log says when the other
processes stopped being heard, when they are heard again, and how many events of this
process's could not be sent meanwhile; events the others published during the outage are not
replayed (their turns are in the store, and a socket that reconnects loads them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from live_server.logs import redact_url

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], None]
PREFIX = "live:"
RETRY_MAX_S = 5.0


class Bus(Protocol):
    def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Tell the other processes, without waiting."""
        ...

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Hear what the other processes publish on `channel` (never this one's own)."""
        ...


class LocalBus:
    """One process alone: nothing to tell."""

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        pass

    def subscribe(self, channel: str, handler: Handler) -> None:
        pass


class RedisBus:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.url = url
        self.origin = secrets.token_hex(8)  # this process: its own messages are skipped
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=None)
        self._handlers: dict[str, Handler] = {}
        self._outgoing: asyncio.Queue[tuple[str, str]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._unsent = 0  # published while Redis was away
        self._lost_at: float | None = None

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[PREFIX + channel] = handler

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        if self._outgoing is None:
            return
        body = json.dumps({"origin": self.origin, **message}, ensure_ascii=False)
        try:
            self._outgoing.put_nowait((PREFIX + channel, body))
        except asyncio.QueueFull:
            self._unsent += 1

    async def open(self) -> None:
        """Reach Redis once (a `ConnectionError` naming the variable and address if not),
        then listen and publish in the background."""
        try:
            await self._redis.ping()
        except Exception as exc:
            await self._redis.aclose()
            raise ConnectionError(
                f"cannot reach Redis at LIVE_REDIS_URL={redact_url(self.url)}: {exc}"
            ) from exc
        self._outgoing = asyncio.Queue(10_000)
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-bus-listen"),
            asyncio.create_task(self._send(), name="live-bus-send"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    async def _send(self) -> None:
        """Publish in order; what queued up meanwhile goes in one pipeline (a reply's frames
        stream faster than one round trip each)."""
        queue = self._outgoing
        assert queue is not None
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 500:
                batch.append(queue.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, body in batch:
                        pipe.publish(channel, body)
                    await pipe.execute()
            except Exception as exc:
                self._unsent += len(batch)
                self._lost(exc)

    async def _listen(self) -> None:
        pause = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self._back()
                pause = 0.1
                async for message in pubsub.listen():
                    self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(pause)
            pause = min(RETRY_MAX_S, pause * 2)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        try:
            body = json.loads(message["data"])
        except (ValueError, TypeError):
            log.warning("an unreadable message on %s was skipped", channel)
            return
        if body.pop("origin", None) == self.origin:
            return
        handler = self._handlers.get(channel)
        if handler is None:
            return
        try:
            handler(body)
        except Exception:  # one bad event costs itself, not the listener
            log.exception("a message on %s could not be handled", channel)

    def _lost(self, exc: BaseException | None = None) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            log.warning(
                "Redis at %s is unreachable (%s): this process now serves alone; other "
                "processes' turns and chat replies are not heard until it is back",
                redact_url(self.url),
                exc or "a publish failed",
            )

    def _back(self) -> None:
        if self._lost_at is None:
            return
        away = time.monotonic() - self._lost_at
        self._lost_at = None
        log.warning(
            "Redis at %s is back after %.1f s; missed meanwhile: %d event(s) of this process "
            "not sent, and whatever the others published (their turns are in the store: a "
            "socket that reconnects loads them)",
            redact_url(self.url),
            away,
            self._unsent,
        )
        self._unsent = 0
