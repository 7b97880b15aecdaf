"""Conversations and their messages, behind a small interface.

SQLite in the data dir is the embedded default; PostgreSQL (`LIVE_DATABASE_URL`) serves several
processes or hosts through the same `Store` protocol. A conversation is one id for both modes:
the live socket's `conversation_id` and chat mode's `session_id` name the same thing.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from live_server.errors import ErrorCode, LiveError

# A conversation's id, as clients name it (the AstrBot Live API's session ids too).
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

Role = Literal["user", "assistant"]
InputKind = Literal["text", "audio", "chat", "http"]


class StorageError(LiveError):
    code = ErrorCode.STORAGE_ERROR


class NotYours(LiveError):
    """A conversation that belongs to another user. (Read-only lookups report such a
    conversation as missing instead, so that others' ids cannot be probed.)"""

    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    id: str
    username: str
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: str
    role: Role
    content: str
    created_at: float
    input_type: InputKind | None = None
    interrupted: bool = False
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One exchange to save: what the user said and what the assistant said (or was heard)."""

    user_text: str
    assistant_text: str
    input_type: InputKind
    user_at: float
    assistant_at: float
    interrupted: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SavedTurn:
    user_message_id: int
    assistant_message_id: int
    created_at: float


class Store(Protocol):
    async def open(self) -> None: ...

    async def aclose(self) -> None:
        """Finish every pending write, then release the database."""
        ...

    async def get(self, conversation_id: str) -> ConversationInfo | None: ...

    async def save_turn(self, conversation_id: str, username: str, turn: TurnRecord) -> SavedTurn:
        """Append both messages in one transaction, creating the conversation if missing.
        Raises `NotYours` or `StorageError`."""
        ...

    async def amend_reply(
        self, message_id: int, content: str, *, interrupted: bool, metrics: dict[str, Any]
    ) -> None:
        """Replace a saved assistant message's text (cut to what the user heard)."""
        ...

    async def history(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        """The last `limit` messages, oldest first."""
        ...

    async def messages(
        self, conversation_id: str, *, offset: int, limit: int
    ) -> list[StoredMessage]: ...

    async def conversations(
        self, username: str, *, offset: int, limit: int
    ) -> tuple[list[ConversationInfo], int]:
        """A page of the user's conversations, most recently active first, and their total."""
        ...


def new_conversation_id() -> str:
    return str(uuid.uuid4())


def check_conversation_id(value: str) -> str:
    if not ID_RE.fullmatch(value):  # the same ids as the wire format's session ids
        raise LiveError(
            "a conversation or session id is 1-128 characters of letters, digits and _.:-",
            code=ErrorCode.INVALID_MESSAGE_FORMAT,
        )
    return value


async def claim(store: Store, conversation_id: str | None, username: str) -> tuple[str, bool]:
    """The id a connection will use and whether it continues an existing conversation.

    Without an id a new one is made (saved with its first turn). A given id must be the user's
    own; an unknown one is taken as the user's new conversation, as in chat mode."""
    if conversation_id is None:
        return new_conversation_id(), False
    check_conversation_id(conversation_id)
    info = await store.get(conversation_id)
    if info is None:
        return conversation_id, False
    if info.username != username:
        raise NotYours(f"conversation {conversation_id!r} belongs to another user")
    return conversation_id, True


CONVERSATION_SELECT = (
    "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
    "FROM conversations c"
)


def conversation_of(row: Any) -> ConversationInfo:
    """A conversations row (with its message count `n`), from either backend."""
    return ConversationInfo(
        id=row["id"],
        username=row["username"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=int(row["n"]),
    )


def message_of(row: Any) -> StoredMessage:
    """A messages row, from either backend (metrics are kept as JSON text in both)."""
    metrics: Any = json.loads(row["metrics"]) if row["metrics"] else None
    return StoredMessage(
        id=int(row["id"]),
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        input_type=row["input_type"],
        interrupted=bool(row["interrupted"]),
        metrics=metrics,
    )
