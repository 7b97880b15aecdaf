"""Revoking an API key ends the sockets already open with it, within `CHECK_EVERY_S`.

A key is checked when a socket opens; a socket lives for hours. The keys file (or the
database) is what the CLI changes (`live-server apikey revoke`), so the server looks at it once
a second (a `stat`, and a read only when it changed; or one query) and ends every socket whose
key is revoked or gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from live_server.auth.credentials import ApiKeyStore
from live_server.core import events
from live_server.errors import CloseCode, ErrorCode

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0
REVOKED = "API key revoked"


class Endable(Protocol):
    def end(self, code: CloseCode, reason: str, error: events.Event | None = None) -> None: ...


class KeySessions:
    def __init__(self, keys: ApiKeyStore) -> None:
        self._keys = keys
        self._open: dict[str, set[Endable]] = {}

    def add(self, key_id: str, session: Endable) -> None:
        self._open.setdefault(key_id, set()).add(session)

    def remove(self, key_id: str, session: Endable) -> None:
        sessions = self._open.get(key_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._open[key_id]

    async def check(self) -> int:
        """End the sockets of keys no longer valid; how many were ended."""
        if not self._open:
            return 0
        valid = await self._keys.records.valid_ids()
        ended = 0
        for key_id in [k for k in self._open if k not in valid]:
            sessions = self._open.pop(key_id)
            log.info("key %s revoked: ending its %d open socket(s)", key_id, len(sessions))
            for session in sessions:
                error = events.Failed(ErrorCode.UNAUTHORIZED, "the API key was revoked")
                session.end(CloseCode.POLICY_VIOLATION, REVOKED, error)
                ended += 1
        return ended

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                await self.check()
            except Exception:  # a keys file being rewritten, the database away: next time
                log.warning("could not read the API keys to check for revocations", exc_info=True)
