"""The embedded store: one SQLite file, written in batches on the event loop itself.

The store runs on the event loop, not on a thread, because a thread starves there: the
`sqlite3` module lets go of the GIL at every step of every statement, and a busy event loop,
which releases and retakes the GIL at every `select`, never lets a waiting thread's switch
request come due. Measured on this machine, with the loop busy as it is with 20 sockets doing
turns, one `SELECT 1` on a thread took 1.4 s; a commit per turn fell seconds behind at 90
turns/s. On the loop, a statement costs what SQLite costs (microseconds: the WAL journal with
`synchronous = NORMAL` writes to the OS, which keeps a commit through a crash of the process,
and does not wait for the disk). What could wait does not:

- Writes are batched: those asked for in the same turn of the loop are committed together, in a
  handful of statements whatever their number.
- No call waits for a lock: another process holding the write lock (a second server on the
  file) makes a batch try again a little later, up to `BUSY_TIMEOUT_S`, while the loop goes on.
- Checkpoints, which do wait for the disk, run on a thread of their own with their own
  connection; a starved checkpoint only lets the WAL grow until the load eases.

The schema is versioned with `PRAGMA user_version`: each entry of `MIGRATIONS` moves the
database one version up, in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from live_server.errors import LiveError
from live_server.storage import (
    CONVERSATION_SELECT,
    ConversationInfo,
    NotYours,
    SavedTurn,
    StorageError,
    StoredMessage,
    TurnRecord,
    conversation_of,
    message_of,
)
from live_server.wire_json import well_formed

T = TypeVar("T")
log = logging.getLogger(__name__)

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


BUSY_TIMEOUT_S = 5.0
CHECKPOINT_ROWS = 2000  # rows written between two checkpoints of the WAL


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._writes: list[tuple[_Save | _Amend, asyncio.Future[Any]]] = []
        self._flush: asyncio.Handle | None = None
        self._busy_since: float | None = None
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-wal")
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpointed_at = 0  # the connection's total_changes at the last checkpoint

    # --- reads and writes -------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read, which sees every write asked for before it."""
        if self._writes:
            await self._drain()
        started = time.monotonic()
        while True:
            try:
                return fn(self._connection())
            except sqlite3.Error as exc:
                if not _busy(exc) or time.monotonic() - started > BUSY_TIMEOUT_S:
                    raise StorageError(f"the conversation store failed: {exc}") from exc
            await asyncio.sleep(0.005)

    async def _write(self, job: _Save | _Amend) -> Any:
        """Queue a write; it is committed with every other asked for in this turn of the loop.
        Once asked for, it happens even if the caller is cancelled: a turn interrupted while
        being saved is still saved."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        self._writes.append((job, done))
        if self._flush is None:
            self._flush = loop.call_soon(self._commit)
        return await asyncio.shield(done)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("the conversation store is closed")
        return self._db

    def _commit(self) -> None:
        """Commit every waiting write in one transaction; if another process holds the write
        lock, try again shortly."""
        self._flush = None
        writes, self._writes = self._writes, []
        jobs = [job for job, _ in writes]
        try:
            db = self._connection()
            with _transaction(db):
                outcomes = _commit_batch(db, jobs)
        except sqlite3.Error as exc:
            now = time.monotonic()
            self._busy_since = self._busy_since or now
            if _busy(exc) and now - self._busy_since < BUSY_TIMEOUT_S:
                self._writes[:0] = writes  # first, in their order
                delay = min(0.05, 0.002 + (now - self._busy_since) / 4)
                self._flush = asyncio.get_running_loop().call_later(delay, self._commit)
                return
            outcomes = [StorageError(f"the conversation store failed: {exc}")] * len(jobs)
        except StorageError as exc:
            outcomes = [exc] * len(jobs)
        self._busy_since = None
        for (_, done), outcome in zip(writes, outcomes, strict=True):
            if done.cancelled():
                continue
            if isinstance(outcome, LiveError):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
        self._maybe_checkpoint()

    async def _drain(self) -> None:
        """Wait until every write asked for so far is committed (or has failed)."""
        pending = [done for _, done in self._writes]
        await asyncio.gather(*pending, return_exceptions=True)

    def _maybe_checkpoint(self) -> None:
        db = self._db
        if db is None or self._checkpoint is not None:
            return
        if db.total_changes - self._checkpointed_at < CHECKPOINT_ROWS:
            return
        self._checkpointed_at = db.total_changes
        loop = asyncio.get_running_loop()
        self._checkpoint = loop.run_in_executor(self._checkpointer, self._checkpoint_wal)
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _checkpoint_wal(self) -> None:
        """On the checkpoint thread: copy the WAL into the database, without blocking writers."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _checkpoint_done(self, future: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("checkpoint of %s failed: %s", self.path, future.exception())

    # --- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        _private_file(self.path)
        # Used on the event loop's thread only (the checkpoint thread has its own).
        db = sqlite3.connect(self.path, isolation_level=None)
        db.row_factory = sqlite3.Row
        # Servers starting together on one file: wait for each other's migrations (once, at
        # start), then never wait on a lock again.
        db.execute(f"PRAGMA busy_timeout = {int(1000 * BUSY_TIMEOUT_S)}")
        await _into_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread does it
        migrate(db)
        db.execute("PRAGMA busy_timeout = 0")
        # SQLite makes its -wal and -shm files with the database's mode; older ones may not
        # have it.
        for suffix in ("-wal", "-shm"):
            _private_file(self.path.with_name(self.path.name + suffix), create=False)
        self._db = db
        self._checkpointed_at = db.total_changes

    async def aclose(self) -> None:
        """Commit every write asked for, then close (which checkpoints the WAL)."""
        while self._writes:
            await self._drain()
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        self._checkpointer.shutdown(wait=True)
        if self._db is not None:
            self._db.execute("PRAGMA busy_timeout = 1000")
            self._db.close()
            self._db = None

    # --- conversations ---------------------------------------------------------------------

    async def get(self, conversation_id: str) -> ConversationInfo | None:
        return await self._read(lambda db: _get(db, conversation_id))

    async def conversations(
        self, username: str, *, offset: int, limit: int
    ) -> tuple[list[ConversationInfo], int]:
        def page(db: sqlite3.Connection) -> tuple[list[ConversationInfo], int]:
            total = db.execute(
                "SELECT count(*) FROM conversations WHERE username = ?", (username,)
            ).fetchone()[0]
            rows = db.execute(
                f"{CONVERSATION_SELECT} WHERE c.username = ? "
                "ORDER BY c.updated_at DESC, c.id LIMIT ? OFFSET ?",
                (username, limit, offset),
            ).fetchall()
            return [conversation_of(r) for r in rows], int(total)

        return await self._read(page)

    async def usernames(self) -> list[str]:
        """Everyone with a conversation here (for `live-server migrate`)."""
        return await self._read(
            lambda db: [r[0] for r in db.execute("SELECT DISTINCT username FROM conversations")]
        )

    # --- messages --------------------------------------------------------------------------

    async def save_turn(self, conversation_id: str, username: str, turn: TurnRecord) -> SavedTurn:
        saved: SavedTurn = await self._write(_Save(conversation_id, username, turn))
        return saved

    async def amend_reply(
        self, message_id: int, content: str, *, interrupted: bool, metrics: dict[str, Any]
    ) -> None:
        await self._write(
            _Amend(message_id, well_formed(content), interrupted, json.dumps(metrics))
        )

    async def history(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        def last(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                (conversation_id, limit),
            ).fetchall()
            return [message_of(r) for r in reversed(rows)]

        return await self._read(last)

    async def messages(
        self, conversation_id: str, *, offset: int, limit: int
    ) -> list[StoredMessage]:
        def page(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id LIMIT ? OFFSET ?",
                (conversation_id, limit, offset),
            ).fetchall()
            return [message_of(r) for r in rows]

        return await self._read(page)


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


async def _into_wal(db: sqlite3.Connection) -> None:
    """Put a database into WAL mode. A new file's first opener switches it; a server opening
    it at that moment is told at once that it is locked (SQLite does not wait out that lock),
    so it tries again, up to `BUSY_TIMEOUT_S`."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.db.execute("ROLLBACK")
            return
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise


@dataclass(frozen=True, slots=True)
class _Save:
    conversation_id: str
    username: str
    turn: TurnRecord


@dataclass(frozen=True, slots=True)
class _Amend:
    message_id: int
    content: str
    interrupted: bool
    metrics: str


# Rows per INSERT: a statement takes at most 32,766 parameters (7 a message).
_ROWS_PER_INSERT = 2000


def _commit_batch(db: sqlite3.Connection, jobs: list[_Save | _Amend]) -> list[Any]:
    """Write a batch inside the caller's transaction; each job's outcome (a `SavedTurn`, None
    for an amend, or the `NotYours` that refused it), in order. A few statements in all: one
    to learn who owns the conversations, one for the conversations, one per 2,000 messages,
    one per amend."""
    saves = [job for job in jobs if isinstance(job, _Save)]
    ids = sorted({job.conversation_id for job in saves})
    owners: dict[str, str] = {}
    if ids:
        # One row, so one step: the owners as JSON rather than a row each.
        found = db.execute(
            "SELECT json_group_object(id, username) FROM conversations "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchone()[0]
        owners = json.loads(found)
    outcomes: list[Any] = [None] * len(jobs)
    conversations: dict[str, list[Any]] = {}  # id -> the row to upsert
    messages: list[tuple[int, list[Any]]] = []  # (job index, its two rows' values)
    for i, job in enumerate(jobs):
        if not isinstance(job, _Save):
            continue
        turn, cid = job.turn, job.conversation_id
        owner = owners.setdefault(cid, job.username)  # the batch's first saver claims a new one
        if owner != job.username:
            outcomes[i] = NotYours(f"conversation {cid!r} belongs to another user")
            continue
        row = conversations.get(cid)
        if row is None:
            title = well_formed(turn.user_text[:TITLE_CHARS])
            conversations[cid] = [cid, owner, title, turn.user_at, 0.0]
            row = conversations[cid]
        row[4] = turn.assistant_at  # the last turn saved is the conversation's latest
        messages.append(
            (
                i,
                [
                    cid, "user", well_formed(turn.user_text), turn.user_at,
                    turn.input_type, 0, None,
                    cid, "assistant", well_formed(turn.assistant_text), turn.assistant_at,
                    turn.input_type, int(turn.interrupted), json.dumps(turn.metrics),
                ],
            )
        )  # fmt: skip
    if conversations:
        db.execute(
            "INSERT INTO conversations (id, username, title, created_at, updated_at) VALUES "
            + ",".join(["(?, ?, ?, ?, ?)"] * len(conversations))
            + " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, "
            "title = CASE WHEN conversations.title = '' THEN excluded.title "
            "ELSE conversations.title END",
            [value for row in conversations.values() for value in row],
        )
    for start in range(0, len(messages), _ROWS_PER_INSERT // 2):
        chunk = messages[start : start + _ROWS_PER_INSERT // 2]
        cursor = db.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at, input_type, "
            "interrupted, metrics) VALUES "
            + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * (2 * len(chunk))),
            [value for _, values in chunk for value in values],
        )
        # The write lock is held and ids only grow: the rows took the ids before the last, in
        # order.
        assert cursor.lastrowid is not None
        first = cursor.lastrowid - 2 * len(chunk) + 1
        for n, (i, _) in enumerate(chunk):
            turn = cast(_Save, jobs[i]).turn
            outcomes[i] = SavedTurn(first + 2 * n, first + 2 * n + 1, turn.assistant_at)
    for job in jobs:
        if isinstance(job, _Amend):
            db.execute(
                "UPDATE messages SET content = ?, interrupted = ?, metrics = ? "
                "WHERE id = ? AND role = 'assistant'",
                (job.content, int(job.interrupted), job.metrics, job.message_id),
            )
    return outcomes


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _private_file(path: Path, *, create: bool = True) -> None:
    """Make `path` readable and writable by its owner only (created empty if `create`)."""
    if create:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


def _get(db: sqlite3.Connection, conversation_id: str) -> ConversationInfo | None:
    row = db.execute(f"{CONVERSATION_SELECT} WHERE c.id = ?", (conversation_id,)).fetchone()
    return None if row is None else conversation_of(row)
