"""The embedded store: one SQLite file, used from one thread off the event loop.

Every call runs on a single worker thread, so writes are serialized and keep their order, and
the event loop never waits on the disk. The schema is versioned with `PRAGMA user_version`:
each entry of `MIGRATIONS` moves the database one version up, in its own transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from live_server.storage import (
    ConversationInfo,
    InputKind,
    NotYours,
    Role,
    SavedTurn,
    StorageError,
    StoredMessage,
    TurnRecord,
)

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and their messages.
    """
    CREATE TABLE conversations (
        id          TEXT PRIMARY KEY,
        username    TEXT NOT NULL,
        title       TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX conversations_by_user ON conversations (username, updated_at DESC);
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content         TEXT NOT NULL,
        created_at      REAL NOT NULL,
        input_type      TEXT,
        interrupted     INTEGER NOT NULL DEFAULT 0,
        metrics         TEXT
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    """,
)
TITLE_CHARS = 80


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-sqlite")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StorageError("the conversation store is closed")
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise StorageError(f"the conversation store failed: {exc}") from exc

        # A job already handed to the thread runs to its end even if the caller is cancelled:
        # a turn interrupted while being saved is still saved.
        future = asyncio.get_running_loop().run_in_executor(self._thread, call)
        return await asyncio.shield(future)

    # --- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        def connect() -> None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 5000")  # first: other servers may share the file
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db)
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._thread, connect)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=True)

    # --- conversations ---------------------------------------------------------------------

    async def get(self, conversation_id: str) -> ConversationInfo | None:
        return await self._run(lambda db: _get(db, conversation_id))

    async def conversations(
        self, username: str, *, offset: int, limit: int
    ) -> tuple[list[ConversationInfo], int]:
        def page(db: sqlite3.Connection) -> tuple[list[ConversationInfo], int]:
            total = db.execute(
                "SELECT count(*) FROM conversations WHERE username = ?", (username,)
            ).fetchone()[0]
            rows = db.execute(
                f"{_CONVERSATION_SELECT} WHERE c.username = ? "
                "ORDER BY c.updated_at DESC, c.id LIMIT ? OFFSET ?",
                (username, limit, offset),
            ).fetchall()
            return [_conversation(r) for r in rows], int(total)

        return await self._run(page)

    # --- messages --------------------------------------------------------------------------

    async def save_turn(self, conversation_id: str, username: str, turn: TurnRecord) -> SavedTurn:
        def save(db: sqlite3.Connection) -> SavedTurn:
            with _transaction(db):
                _claim(
                    db,
                    conversation_id,
                    username,
                    title=turn.user_text[:TITLE_CHARS],
                    now=turn.user_at,
                )
                insert = (
                    "INSERT INTO messages (conversation_id, role, content, created_at, "
                    "input_type, interrupted, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)"
                )
                user = db.execute(
                    insert,
                    (
                        conversation_id,
                        "user",
                        turn.user_text,
                        turn.user_at,
                        turn.input_type,
                        0,
                        None,
                    ),
                )
                assistant = db.execute(
                    insert,
                    (
                        conversation_id,
                        "assistant",
                        turn.assistant_text,
                        turn.assistant_at,
                        turn.input_type,
                        int(turn.interrupted),
                        json.dumps(turn.metrics),
                    ),
                )
                db.execute(
                    "UPDATE conversations SET updated_at = ?, "
                    "title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                    (turn.assistant_at, turn.user_text[:TITLE_CHARS], conversation_id),
                )
            assert user.lastrowid is not None and assistant.lastrowid is not None
            return SavedTurn(user.lastrowid, assistant.lastrowid, turn.assistant_at)

        return await self._run(save)

    async def amend_reply(
        self, message_id: int, content: str, *, interrupted: bool, metrics: dict[str, Any]
    ) -> None:
        def amend(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE messages SET content = ?, interrupted = ?, metrics = ? "
                "WHERE id = ? AND role = 'assistant'",
                (content, int(interrupted), json.dumps(metrics), message_id),
            )

        await self._run(amend)

    async def history(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        def last(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                (conversation_id, limit),
            ).fetchall()
            return [_message(r) for r in reversed(rows)]

        return await self._run(last)

    async def messages(
        self, conversation_id: str, *, offset: int, limit: int
    ) -> list[StoredMessage]:
        def page(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id LIMIT ? OFFSET ?",
                (conversation_id, limit, offset),
            ).fetchall()
            return [_message(r) for r in rows]

        return await self._run(page)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema up to the newest version; the version it is at now.

    The version is read inside each migration's write transaction, so servers starting at once
    on the same data dir apply every step exactly once between them."""
    while True:
        with _transaction(db):
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{version=} of the conversation store is newer than this server "
                    f"({len(MIGRATIONS)}); upgrade live-server"
                )
            if version == len(MIGRATIONS):
                return version
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _claim(
    db: sqlite3.Connection, conversation_id: str, username: str, title: str, now: float
) -> None:
    db.execute(
        "INSERT OR IGNORE INTO conversations (id, username, title, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (conversation_id, username, title, now, now),
    )
    owner = db.execute(
        "SELECT username FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()[0]
    if owner != username:
        raise NotYours(f"conversation {conversation_id!r} belongs to another user")


_CONVERSATION_SELECT = (
    "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
    "FROM conversations c"
)


def _get(db: sqlite3.Connection, conversation_id: str) -> ConversationInfo | None:
    row = db.execute(f"{_CONVERSATION_SELECT} WHERE c.id = ?", (conversation_id,)).fetchone()
    return None if row is None else _conversation(row)


def _conversation(row: sqlite3.Row) -> ConversationInfo:
    return ConversationInfo(
        id=row["id"],
        username=row["username"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=row["n"],
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    metrics: Any = json.loads(row["metrics"]) if row["metrics"] else None
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=cast(Role, row["role"]),
        content=row["content"],
        created_at=row["created_at"],
        input_type=cast("InputKind | None", row["input_type"]),
        interrupted=bool(row["interrupted"]),
        metrics=metrics,
    )
