"""Failed logins counted over a sliding window: in this process, or in Redis for all of them.

With `LIVE_REDIS_URL` set, every process counts into the same Redis sorted sets (one per
key: its members are the failures, scored by wall-clock time), so a guesser spreading guesses
over the workers or instances behind a proxy meets the same limits as against one process.
If Redis cannot be reached, the process counts on its own until it can: the limits then hold
per process, as they do without Redis, and logins keep working.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)
PREFIX = "live:login-failures:"


class Throttle(Protocol):
    async def counts(self, keys: Sequence[str]) -> list[int]:
        """Failures recorded under each key within the window."""
        ...

    async def add(self, keys: Sequence[str]) -> None:
        """Record one failure under each key."""
        ...

    async def clear(self, key: str) -> None: ...


class LocalThrottle:
    """This process's own counts."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    async def counts(self, keys: Sequence[str]) -> list[int]:
        self._forget(time.monotonic() - self.window_s)
        return [len(self._failures.get(key, ())) for key in keys]

    async def add(self, keys: Sequence[str]) -> None:
        now = time.monotonic()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _forget(self, horizon: float) -> None:
        for key in list(self._failures):
            failures = self._failures[key]
            while failures and failures[0] < horizon:
                failures.popleft()
            if not failures:
                del self._failures[key]


class RedisThrottle:
    """Counts shared by every process on one Redis (`redis` is a `redis.asyncio.Redis`)."""

    def __init__(self, redis: Any, window_s: float) -> None:
        self._redis = redis
        self.window_s = window_s
        self._alone = LocalThrottle(window_s)  # while Redis is away
        self._away = False

    @classmethod
    def from_url(cls, url: str, window_s: float) -> RedisThrottle:
        import redis.asyncio as redis

        # Short timeouts: a login waits at most this long on an unreachable Redis.
        return cls(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2), window_s)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def counts(self, keys: Sequence[str]) -> list[int]:
        horizon = time.time() - self.window_s
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zremrangebyscore(PREFIX + key, "-inf", horizon)
                    pipe.zcard(PREFIX + key)
                replies = await pipe.execute()
        except Exception as exc:
            self._lost(exc)
            return await self._alone.counts(keys)
        self._back()
        return [int(n) for n in replies[1::2]]

    async def add(self, keys: Sequence[str]) -> None:
        now = time.time()
        member = f"{now:.6f}:{secrets.token_hex(4)}"  # two failures in one microsecond: two
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zadd(PREFIX + key, {member: now})
                    pipe.expire(PREFIX + key, int(self.window_s) + 1)
                await pipe.execute()
        except Exception as exc:
            self._lost(exc)
            await self._alone.add(keys)
            return
        self._back()

    async def clear(self, key: str) -> None:
        await self._alone.clear(key)
        try:
            await self._redis.delete(PREFIX + key)
        except Exception as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        if not self._away:
            self._away = True
            log.warning(
                "Redis is unreachable (%s): failed logins are counted by this process alone "
                "until it is back",
                exc,
            )

    def _back(self) -> None:
        if self._away:
            self._away = False
            log.warning("Redis is back: failed logins are counted across processes again")
