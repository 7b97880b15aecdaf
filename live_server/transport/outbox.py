"""The bounded queue between a session's producers and its one socket writer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from live_server.core.output import Droppable


@dataclass(slots=True)
class Outgoing:
    text: str
    # The turn this frame belongs to: once that turn is interrupted the frame is never sent.
    turn: Droppable | None = None
    on_sent: Callable[[], None] | None = None
    # What must happen before this frame is sent (a turn's `end` waits for the turn to be
    # stored): the writer awaits it, and sends the frames it gives (an error) first. Frames
    # queued after this one wait with it, so the order on the wire is the order queued.
    gate: Callable[[], Awaitable[Sequence[str]]] | None = None
    control: bool = False  # queued with `put_control`
    # The client acts on this frame at once (`stop_play`, a turn's first delta): once it is
    # written, the writer lets a reader on this host run before going on.
    wake: bool = False


class OutboxOverflow(Exception):
    """The client has stopped reading: even control frames no longer fit."""


class Outbox:
    """FIFO of encoded frames. Turn frames wait for room (`put`), which slows the turn down to
    the client's pace; control frames (errors, `stop_play`, `end`) never wait (`put_control`)
    but may exceed the bound only by `control_reserve`."""

    def __init__(self, maxsize: int, control_reserve: int = 32) -> None:
        self._items: deque[Outgoing] = deque()
        self._controls = 0  # control frames waiting
        self._control_sent = asyncio.Event()
        self._maxsize = maxsize
        self._hard_limit = maxsize + control_reserve
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Outgoing) -> None:
        while len(self._items) >= self._maxsize and not self._closed:
            self._not_full.clear()
            await self._not_full.wait()
        self._append(item)

    def put_control(self, item: Outgoing) -> None:
        """Queue without waiting: control frames, and the first frames of a turn."""
        if self._closed:
            return
        if len(self._items) >= self._hard_limit:
            raise OutboxOverflow(f"{len(self._items)} frames are waiting for the client")
        item.control = True
        self._controls += 1
        self._append(item)

    async def control_room(self, limit: int) -> None:
        """Return once fewer than `limit` control frames wait. The reader waits here before
        taking the next client frame, so a client that sends fast (a burst of mistakes, each
        earning an `error`) is read at the pace it reads our answers, and only a client that
        stops reading fills the outbox."""
        while self._controls >= limit and not self._closed:
            self._control_sent.clear()
            await self._control_sent.wait()

    def close(self) -> None:
        """The connection is gone: drop what waits, and let producers go on without waiting."""
        self._closed = True
        self._items.clear()
        self._controls = 0
        self._not_full.set()
        self._control_sent.set()

    def _append(self, item: Outgoing) -> None:
        if self._closed:
            return
        self._items.append(item)
        self._not_empty.set()

    def discard_stale(self) -> None:
        """Drop the frames of interrupted turns now, freeing their memory."""
        self._items = deque(i for i in self._items if i.turn is None or not i.turn.interrupted)
        self._controls = sum(i.control for i in self._items)
        self._update()

    async def wait(self) -> None:
        """Return once there is at least one frame to send."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()

    def pop(self) -> Outgoing | None:
        """The oldest frame, or None when empty: the writer drains a batch without a hop."""
        if not self._items:
            return None
        item = self._items.popleft()
        if item.control:
            self._controls -= 1
            self._control_sent.set()
        self._update()
        return item

    def _update(self) -> None:
        if len(self._items) < self._maxsize:
            self._not_full.set()
