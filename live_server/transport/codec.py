"""Codecs: each wire protocol's mapping from the session's events to its frames."""

from __future__ import annotations

from typing import Protocol

from live_server.core.events import Event


class Codec(Protocol):
    def encode(self, event: Event) -> list[str]:
        """The encoded frames that carry `event` (none, when the protocol has no use for it)."""
        ...
