"""The conversation one connection keeps: what was said and what was heard, bounded."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from live_server.bus import Bus, LocalBus
from live_server.engines import ChatMessage
from live_server.settings import Settings
from live_server.storage import InputKind, Store, StoredMessage, TurnRecord
from live_server.text import is_cjk

INTERRUPTED_NOTE = "[interrupted by the user]"


@dataclass(frozen=True, slots=True)
class Exchange:
    user: str
    assistant: str
    interrupted: bool = False

    def messages(self) -> list[ChatMessage]:
        assistant = self.assistant
        if self.interrupted:
            # The model is told where it was cut off, and sees only what the user heard.
            assistant = f"{assistant} {INTERRUPTED_NOTE}" if assistant else INTERRUPTED_NOTE
        return [
            {"role": "user", "content": self.user},
            {"role": "assistant", "content": assistant},
        ]

    def record(
        self, input_type: InputKind, *, user_at: float, metrics: dict[str, Any]
    ) -> TurnRecord:
        """The exchange as stored: a live turn and a chat reply are saved alike, the reply
        timed now, when it is over."""
        return TurnRecord(
            user_text=self.user,
            assistant_text=self.assistant,
            input_type=input_type,
            user_at=user_at,
            assistant_at=time.time(),
            interrupted=self.interrupted,
            metrics=metrics,
        )


class Conversation:
    """The exchanges the LLM sees: at most `max_messages` messages (system prompt aside) and at
    most `max_chars` characters of them with the new user message; the oldest go first."""

    def __init__(
        self,
        *,
        system_prompt: str,
        max_messages: int,
        max_chars: int,
        history: Iterable[Exchange] = (),
    ) -> None:
        self.system_prompt = system_prompt
        self.max_chars = max_chars
        # Every exchange is two messages; the new user message takes one more place.
        self._exchanges: deque[Exchange] = deque(history, maxlen=max(0, (max_messages - 1) // 2))

    @classmethod
    def configured(cls, settings: Settings, history: Iterable[Exchange] = ()) -> Conversation:
        """With the system prompt and the bounds from settings."""
        return cls(
            system_prompt=settings.system_prompt,
            max_messages=settings.history_max_messages,
            max_chars=settings.history_max_chars,
            history=history,
        )

    @classmethod
    async def load(cls, store: Store, settings: Settings, conversation_id: str) -> Conversation:
        """The stored conversation's latest exchanges, bounded as settings say."""
        stored = await store.history(conversation_id, settings.history_max_messages)
        return cls.configured(settings, exchanges(stored))

    def messages_for(self, user_text: str) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        budget = self.max_chars - len(user_text)
        kept: list[Exchange] = []
        for exchange in reversed(self._exchanges):
            budget -= len(exchange.user) + len(exchange.assistant)
            if budget < 0:
                break
            kept.append(exchange)
        for exchange in reversed(kept):
            messages.extend(exchange.messages())
        messages.append({"role": "user", "content": user_text})
        return messages

    def record(self, exchange: Exchange) -> None:
        self._exchanges.append(exchange)

    def replace(self, old: Exchange, new: Exchange, *, alike: bool = False) -> None:
        """Put `new` where `old` (that very exchange, or with `alike` the latest equal one:
        another process's) is, if it is still kept."""
        for i in range(len(self._exchanges) - 1, -1, -1):
            kept = self._exchanges[i]
            if kept is old or (alike and kept == old):
                self._exchanges[i] = new
                return

    def __len__(self) -> int:
        return len(self._exchanges)


class ConversationFeed:
    """Keeps the live connections on one conversation in step, in this process and, through
    the bus (Redis, `LIVE_REDIS_URL`), in the others.

    A live socket holds its conversation in memory, loaded at connect, so that no store read
    comes before a turn's first delta. Every exchange a connection adds to a conversation (a
    live turn, a chat reply, an `/api/v1/chat` reply) or amends is told here, and the other
    live sockets on that conversation put it in their copy: their model's next turn sees it.
    Without Redis another server process sharing the database is not heard; its turns arrive
    on reconnect.

    Conversations are keyed by user as well as by id: until its first turn is stored, an id a
    socket chose is nobody's yet, and another user's reply under the same id must not reach it.
    """

    def __init__(self, bus: Bus | None = None) -> None:
        self._copies: dict[tuple[str, str], set[Conversation]] = {}
        self._bus = bus or LocalBus()
        self._bus.subscribe("feed", self._heard)

    def join(self, username: str, conversation_id: str, copy: Conversation) -> None:
        self._copies.setdefault((username, conversation_id), set()).add(copy)

    def leave(self, username: str, conversation_id: str, copy: Conversation) -> None:
        key = (username, conversation_id)
        copies = self._copies.get(key)
        if copies is not None:
            copies.discard(copy)
            if not copies:
                del self._copies[key]

    def added(
        self,
        username: str,
        conversation_id: str,
        exchange: Exchange,
        *,
        by: Conversation | None = None,
    ) -> None:
        """`by` (the adder's own copy, which already holds it) is skipped."""
        self._added(username, conversation_id, exchange, by)
        self._bus.publish(
            "feed",
            {"kind": "added", "user": username, "id": conversation_id, "new": _out(exchange)},
        )

    def replaced(
        self,
        username: str,
        conversation_id: str,
        old: Exchange,
        new: Exchange,
        *,
        by: Conversation | None = None,
    ) -> None:
        self._replaced(username, conversation_id, old, new, by)
        message = {"kind": "replaced", "user": username, "id": conversation_id}
        self._bus.publish("feed", {**message, "old": _out(old), "new": _out(new)})

    def _added(
        self, username: str, conversation_id: str, exchange: Exchange, by: Conversation | None
    ) -> None:
        for copy in self._copies.get((username, conversation_id), ()):
            if copy is not by:
                copy.record(exchange)

    def _replaced(
        self,
        username: str,
        conversation_id: str,
        old: Exchange,
        new: Exchange,
        by: Conversation | None,
    ) -> None:
        for copy in self._copies.get((username, conversation_id), ()):
            if copy is not by:
                copy.replace(old, new, alike=by is None)

    def _heard(self, message: dict[str, Any]) -> None:
        """Another process's exchange."""
        username, conversation_id = message["user"], message["id"]
        if (username, conversation_id) not in self._copies:
            return
        new = _in(message["new"])
        if message["kind"] == "added":
            self._added(username, conversation_id, new, None)
        elif message["kind"] == "replaced":
            self._replaced(username, conversation_id, _in(message["old"]), new, None)


def _out(exchange: Exchange) -> list[Any]:
    return [exchange.user, exchange.assistant, exchange.interrupted]


def _in(value: list[Any]) -> Exchange:
    user, assistant, interrupted = value
    return Exchange(str(user), str(assistant), bool(interrupted))


def exchanges(messages: Iterable[StoredMessage]) -> list[Exchange]:
    """Stored messages paired back into exchanges: each user message with the reply after it."""
    out: list[Exchange] = []
    user: StoredMessage | None = None
    for m in messages:
        if m.role == "user":
            user = m
        elif user is not None:
            out.append(Exchange(user.content, m.content, interrupted=m.interrupted))
            user = None
    return out


def join_sentences(sentences: list[str]) -> str:
    """Join spoken chunks back into prose: a space between Latin text, none around CJK."""
    out = ""
    for s in sentences:
        if out and not (is_cjk(out[-1]) or _is_cjk_punct(out[-1]) or is_cjk(s[0])):
            out += " "
        out += s
    return out


def _is_cjk_punct(ch: str) -> bool:
    return 0x3000 <= ord(ch) <= 0x303F or 0xFF00 <= ord(ch) <= 0xFFEF
