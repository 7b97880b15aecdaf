"""Everything kept in PostgreSQL (`LIVE_DATABASE_URL=postgresql://...`): conversations and
their messages, API keys and user accounts, for several processes or hosts on one database.

One pool of connections (psycopg 3) serves the three. Each connection is checked as it is
taken, so a database that restarted costs no turn its save; while the database is away a save
waits at most `ACQUIRE_TIMEOUT_S` for a connection, then fails with a coded error, and the
turn still ends. The schema is versioned in `live_schema`: each entry of `MIGRATIONS` moves
the database one version up, and servers starting together take an advisory lock, so each
step runs once between them.

PostgreSQL's text cannot hold NUL, which a client's JSON can: it is stored as U+FFFD.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from live_server.auth.accounts import UserRecord
from live_server.auth.credentials import ApiKeyRecord, new_jwt_secret
from live_server.logs import redact_url
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

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT_S = 5.0  # how long a query waits for a connection to a missing database
CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK = 0x11FE5E  # the advisory lock servers starting together migrate under
TITLE_CHARS = 80

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, messages, API keys, users.
    """
    CREATE TABLE conversations (
        id          text PRIMARY KEY,
        username    text NOT NULL,
        title       text NOT NULL DEFAULT '',
        created_at  double precision NOT NULL,
        updated_at  double precision NOT NULL
    );
    CREATE INDEX conversations_by_user ON conversations (username, updated_at DESC);
    CREATE TABLE messages (
        id              bigserial PRIMARY KEY,
        conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role            text NOT NULL CHECK (role IN ('user', 'assistant')),
        content         text NOT NULL,
        created_at      double precision NOT NULL,
        input_type      text,
        interrupted     boolean NOT NULL DEFAULT false,
        metrics         text
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE TABLE api_keys (
        id          text PRIMARY KEY,
        name        text NOT NULL,
        key_hash    text NOT NULL UNIQUE,
        scopes      text[] NOT NULL,
        created_at  double precision NOT NULL,
        revoked     boolean NOT NULL DEFAULT false
    );
    CREATE TABLE users (
        username        text PRIMARY KEY,
        password_hash   text NOT NULL,
        created_at      double precision NOT NULL
    );
    """,
    # 2: secrets every instance must share (the dashboard's signing secret).
    """
    CREATE TABLE secrets (
        name    text PRIMARY KEY,
        value   text NOT NULL
    );
    """,
)


def _text(value: str) -> str:
    return well_formed(value).replace("\0", "\ufffd")


class Database:
    """The pool, opened once per process; the stores below share it."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]] = (
            AsyncConnectionPool(
                url,
                min_size=1,
                max_size=max_size,
                open=False,
                kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S},
                check=AsyncConnectionPool.check_connection,
                timeout=ACQUIRE_TIMEOUT_S,
                name="live",
            )
        )
        self._opened = False

    async def open(self) -> None:
        """Connect and bring the schema up to date; `StorageError` naming the address if the
        database cannot be reached."""
        if self._opened:
            return
        try:
            await self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 1)
        except (PoolTimeout, psycopg.Error) as exc:
            await self.pool.close()
            raise StorageError(
                f"cannot reach the database at LIVE_DATABASE_URL={redact_url(self.url)}: {exc}"
            ) from exc
        self._opened = True
        await self.migrate()

    async def aclose(self) -> None:
        if self._opened:
            self._opened = False
            await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """A connection in a transaction, committed at the end; any database failure becomes a
        `StorageError`."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                yield conn
        except PoolTimeout as exc:
            raise StorageError(
                f"the database at {redact_url(self.url)} is not answering ({exc})"
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"the database failed: {exc}") from exc

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self.transaction() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def migrate(self) -> int:
        """Bring the schema up to the newest version; the version it is at now."""
        async with self.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS live_schema (version integer NOT NULL)")
            row = await (await conn.execute("SELECT max(version) AS v FROM live_schema")).fetchone()
            version = int(row["v"] or 0) if row else 0
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{version=} of the database is newer than this server "
                    f"({len(MIGRATIONS)}); upgrade live-server"
                )
            for number in range(version, len(MIGRATIONS)):
                await conn.execute(cast(Any, MIGRATIONS[number]))
                await conn.execute("INSERT INTO live_schema (version) VALUES (%s)", (number + 1,))
                log.info("database migrated to version %d", number + 1)
            return len(MIGRATIONS)


# --- conversations --------------------------------------------------------------------------


class PostgresStore:
    """The conversation store on PostgreSQL. A turn is saved in one transaction, committed
    (to the disk, as PostgreSQL commits) before `save_turn` returns."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self) -> None:
        await self.db.open()

    async def aclose(self) -> None:
        await self.db.aclose()

    async def get(self, conversation_id: str) -> ConversationInfo | None:
        rows = await self.db.fetch(f"{CONVERSATION_SELECT} WHERE c.id = %s", (conversation_id,))
        return conversation_of(rows[0]) if rows else None

    async def conversations(
        self, username: str, *, offset: int, limit: int
    ) -> tuple[list[ConversationInfo], int]:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM conversations WHERE username = %s", (username,)
            )
            total = (await cursor.fetchone() or {"n": 0})["n"]
            cursor = await conn.execute(
                f"{CONVERSATION_SELECT} WHERE c.username = %s "
                "ORDER BY c.updated_at DESC, c.id LIMIT %s OFFSET %s",
                (username, limit, offset),
            )
            rows = await cursor.fetchall()
        return [conversation_of(r) for r in rows], int(total)

    async def save_turn(self, conversation_id: str, username: str, turn: TurnRecord) -> SavedTurn:
        async with self.db.transaction() as conn:
            # Claim or touch the conversation; another user's is left as it is, and says so
            # by returning no row.
            cursor = await conn.execute(
                "INSERT INTO conversations (id, username, title, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "updated_at = excluded.updated_at, title = CASE WHEN conversations.title = '' "
                "THEN excluded.title ELSE conversations.title END "
                "WHERE conversations.username = excluded.username RETURNING id",
                (
                    conversation_id,
                    username,
                    _text(turn.user_text[:TITLE_CHARS]),
                    turn.user_at,
                    turn.assistant_at,
                ),
            )
            if await cursor.fetchone() is None:
                raise NotYours(f"conversation {conversation_id!r} belongs to another user")
            ids = []
            for role, content, at, interrupted, metrics in (
                ("user", turn.user_text, turn.user_at, False, None),
                (
                    "assistant",
                    turn.assistant_text,
                    turn.assistant_at,
                    turn.interrupted,
                    json.dumps(turn.metrics),
                ),
            ):
                cursor = await conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, created_at, "
                    "input_type, interrupted, metrics) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id",
                    (
                        conversation_id,
                        role,
                        _text(content),
                        at,
                        turn.input_type,
                        interrupted,
                        metrics,
                    ),
                )
                row = await cursor.fetchone()
                assert row is not None
                ids.append(int(row["id"]))
        return SavedTurn(ids[0], ids[1], turn.assistant_at)

    async def amend_reply(
        self, message_id: int, content: str, *, interrupted: bool, metrics: dict[str, Any]
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE messages SET content = %s, interrupted = %s, metrics = %s "
                "WHERE id = %s AND role = 'assistant'",
                (_text(content), interrupted, json.dumps(metrics), message_id),
            )

    async def history(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        rows = await self.db.fetch(
            "SELECT * FROM messages WHERE conversation_id = %s ORDER BY id DESC LIMIT %s",
            (conversation_id, limit),
        )
        return [message_of(r) for r in reversed(rows)]

    async def messages(
        self, conversation_id: str, *, offset: int, limit: int
    ) -> list[StoredMessage]:
        rows = await self.db.fetch(
            "SELECT * FROM messages WHERE conversation_id = %s ORDER BY id LIMIT %s OFFSET %s",
            (conversation_id, limit, offset),
        )
        return [message_of(r) for r in rows]

    async def import_conversation(
        self, info: ConversationInfo, messages: list[StoredMessage]
    ) -> bool:
        """Copy a conversation from another store (`live-server migrate`); False if one with
        its id is here already, which is then left as it is."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO conversations (id, username, title, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                (info.id, info.username, _text(info.title), info.created_at, info.updated_at),
            )
            if await cursor.fetchone() is None:
                return False
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO messages (conversation_id, role, content, created_at, "
                    "input_type, interrupted, metrics) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            info.id,
                            m.role,
                            _text(m.content),
                            m.created_at,
                            m.input_type,
                            m.interrupted,
                            None if m.metrics is None else json.dumps(m.metrics),
                        )
                        for m in messages
                    ],
                )
        return True


# --- API keys and users ---------------------------------------------------------------------


class PostgresKeys:
    """API key records (`auth.KeyRecords`): hashes only, as in the keys file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, record: ApiKeyRecord) -> bool:
        rows = await self.db.fetch(
            "INSERT INTO api_keys (id, name, key_hash, scopes, created_at, revoked) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            (
                record.id,
                _text(record.name),
                record.key_hash,
                record.scopes,
                record.created_at,
                record.revoked,
            ),
        )
        return bool(rows)

    async def all(self) -> list[ApiKeyRecord]:
        rows = await self.db.fetch("SELECT * FROM api_keys ORDER BY created_at, id")
        return [_key(r) for r in rows]

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        # An index lookup by the key's SHA-256: timing can tell at most about the hash, which
        # says nothing of the key.
        rows = await self.db.fetch("SELECT * FROM api_keys WHERE key_hash = %s", (key_hash,))
        return _key(rows[0]) if rows else None

    async def revoke(self, key_id: str) -> bool:
        rows = await self.db.fetch(
            "UPDATE api_keys SET revoked = true WHERE id = %s AND NOT revoked RETURNING id",
            (key_id,),
        )
        return bool(rows)

    async def valid_ids(self) -> set[str]:
        rows = await self.db.fetch("SELECT id FROM api_keys WHERE NOT revoked")
        return {r["id"] for r in rows}


class PostgresSecrets:
    """Secrets in the database, so that every instance on it has the same (`auth.SigningSecret`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def jwt_secret(self, proposed: str | None = None) -> str:
        """The signing secret; `proposed` (else a new one) if there was none yet."""
        return await self._keep("jwt", proposed or new_jwt_secret())

    async def _keep(self, name: str, value: str) -> str:
        """The secret called `name`: `value` if there was none yet, else the one kept first
        (instances starting together all end up with one of theirs)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (name, value),
            )
        # A statement of its own: it sees a row another instance committed meanwhile.
        rows = await self.db.fetch("SELECT value FROM secrets WHERE name = %s", (name,))
        return str(rows[0]["value"])


def _key(row: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        revoked=row["revoked"],
    )


class PostgresUsers:
    """Account records (`users.UserRecords`): scrypt hashes only, as in the users file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, username: str) -> UserRecord | None:
        rows = await self.db.fetch("SELECT * FROM users WHERE username = %s", (username,))
        return _user(rows[0]) if rows else None

    async def add(self, record: UserRecord) -> bool:
        rows = await self.db.fetch(
            "INSERT INTO users (username, password_hash, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING username",
            (record.username, record.password_hash, record.created_at),
        )
        return bool(rows)

    async def set_hash(self, username: str, password_hash: str) -> bool:
        rows = await self.db.fetch(
            "UPDATE users SET password_hash = %s WHERE username = %s RETURNING username",
            (password_hash, username),
        )
        return bool(rows)

    async def remove(self, username: str) -> bool:
        rows = await self.db.fetch(
            "DELETE FROM users WHERE username = %s RETURNING username", (username,)
        )
        return bool(rows)

    async def all(self) -> list[UserRecord]:
        rows = await self.db.fetch("SELECT * FROM users ORDER BY username")
        return [_user(r) for r in rows]


def _user(row: dict[str, Any]) -> UserRecord:
    return UserRecord(row["username"], row["password_hash"], row["created_at"])
