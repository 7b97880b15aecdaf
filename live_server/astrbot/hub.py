"""Who hears what in chat mode: the sockets bound to each session, and the replies running.

A reply's frames go to the connection that asked for it, which may slow the reply down to its
own pace, and to every other connection bound to the same session, which may not: a bound
listener that falls too far behind is disconnected instead. The model's reasoning reaches only
the connections that asked to see it (`Audience`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from live_server.astrbot.frames import Frame
from live_server.bus import Bus, LocalBus


class Subscriber(Protocol):
    @property
    def username(self) -> str: ...

    @property
    def show_reasoning(self) -> bool:
        """Whether the connection asked to see the model's reasoning (for display)."""
        ...

    async def send(self, frame: Frame) -> None:
        """Queue a frame, waiting for room: for the connection that asked for the reply."""
        ...

    def send_now(self, frame: Frame) -> None:
        """Queue a frame without waiting; a listener that cannot keep up is dropped."""
        ...


class Running(Protocol):
    """A reply in progress, as the hub sees it."""

    @property
    def username(self) -> str: ...

    @property
    def message_id(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def sender(self) -> Subscriber: ...

    def interrupt(self) -> None: ...


class Audience(StrEnum):
    """Who a frame is for: every listener, or only those that do or do not show the model's
    reasoning (a reasoning delta; the whole reply with its reasoning, and without it)."""

    ALL = "all"
    SHOWING_REASONING = "showing"
    HIDING_REASONING = "hiding"

    def includes(self, subscriber: Subscriber) -> bool:
        if self is Audience.ALL:
            return True
        return subscriber.show_reasoning == (self is Audience.SHOWING_REASONING)


class ChatHub:
    """Bindings and replies of this process; through the bus (Redis), a reply's frames also
    reach the listeners bound on other processes, and an interrupt the process running it."""

    def __init__(self, bus: Bus | None = None) -> None:
        self._bound: dict[str, set[Subscriber]] = {}
        # Keyed by user too: clients choose message ids, and two users may choose the same.
        self._replies: dict[tuple[str, str], Running] = {}
        self._bus = bus or LocalBus()
        self._bus.subscribe("chat", self._heard_frame)
        self._bus.subscribe("interrupt", self._heard_interrupt)

    # --- bindings -----------------------------------------------------------------------------

    def bind(self, session_id: str, subscriber: Subscriber) -> None:
        self._bound.setdefault(session_id, set()).add(subscriber)

    def unbind_all(self, subscriber: Subscriber) -> None:
        for session_id in [s for s, subs in self._bound.items() if subscriber in subs]:
            subs = self._bound[session_id]
            subs.discard(subscriber)
            if not subs:
                del self._bound[session_id]

    def is_bound(self, session_id: str, subscriber: Subscriber) -> bool:
        return subscriber in self._bound.get(session_id, ())

    def sessions_of(self, subscriber: Subscriber) -> list[str]:
        return [s for s, subs in self._bound.items() if subscriber in subs]

    async def publish(
        self,
        session_id: str,
        frame: Frame,
        sender: Subscriber | None,
        audience: Audience = Audience.ALL,
    ) -> None:
        """Send `frame` to the sender (waiting for room) and offer it to every other listener,
        each if it is of the frame's `audience`."""
        if sender is not None and audience.includes(sender):
            await sender.send(frame)
        self._offer(session_id, frame, sender, audience)
        self._bus.publish("chat", {"session": session_id, "frame": frame, "audience": audience})

    def _offer(
        self, session_id: str, frame: Frame, sender: Subscriber | None, audience: Audience
    ) -> None:
        for subscriber in list(self._bound.get(session_id, ())):
            if subscriber is not sender and audience.includes(subscriber):
                subscriber.send_now(frame)

    def _heard_frame(self, message: dict[str, Any]) -> None:
        audience = Audience(message.get("audience", Audience.ALL))
        self._offer(str(message["session"]), message["frame"], None, audience)

    # --- replies ------------------------------------------------------------------------------

    def add_reply(self, reply: Running) -> None:
        self._replies[reply.username, reply.message_id] = reply

    def remove_reply(self, reply: Running) -> None:
        key = (reply.username, reply.message_id)
        if self._replies.get(key) is reply:
            del self._replies[key]

    def reply(self, username: str, message_id: str) -> Running | None:
        """The user's running reply with this id."""
        return self._replies.get((username, message_id))

    def interrupt_elsewhere(self, username: str, message_id: str, sessions: list[str]) -> None:
        """Ask the other processes to stop the user's reply `message_id`, if it runs in one of
        `sessions` (those the asking connection is bound to)."""
        self._bus.publish(
            "interrupt", {"user": username, "message": message_id, "sessions": sessions}
        )

    def _heard_interrupt(self, message: dict[str, Any]) -> None:
        reply = self._replies.get((str(message["user"]), str(message["message"])))
        if reply is not None and reply.session_id in message["sessions"]:
            reply.interrupt()
