"""The interface each wire protocol's codec fills: the session's events in, encoded frames out.
No I/O: the connection writes what a codec returns."""

from __future__ import annotations

from typing import Protocol

from live_server.core.events import Event


class Codec(Protocol):
    def encode(self, event: Event) -> list[str]:
        """The encoded frames that carry `event` (none, when the protocol has no use for it)."""
        ...
