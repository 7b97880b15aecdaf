"""Where a session's events go, as the core sees it: a connection (`transport`) or a test's
list. Protocols only: nothing here sends anything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from live_server.core import events

OnSent = Callable[[], None]


class Droppable(Protocol):
    """A turn as the writer sees it: once it is interrupted its frames are never sent."""

    @property
    def interrupted(self) -> bool: ...


class Output(Protocol):
    async def send(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None:
        """Queue `event`, waiting for room: a turn's frames go at the client's pace."""
        ...

    def send_now(
        self, event: events.Event, *, turn: Droppable | None = None, on_sent: OnSent | None = None
    ) -> None:
        """Queue `event` without waiting (control events: errors, stops, ends)."""
        ...

    def send_when(self, event: events.Event, ready: Awaitable[events.Event | None]) -> None:
        """Queue `event` to go once `ready` is done (after the event it gives, if any); what
        is queued after it waits with it."""
        ...

    def discard_stale(self) -> None:
        """Drop the queued frames of interrupted turns now."""
        ...
