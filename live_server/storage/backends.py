"""Where the server keeps what outlives a process: conversations, API keys and accounts.

By default the data dir holds them (SQLite, and two JSON files); with `LIVE_DATABASE_URL` set,
PostgreSQL holds all three, so that several processes or hosts share them, and the dashboard's
signing secret too (unless `LIVE_JWT_SECRET` gives it): a token made by one instance is good on
every other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from live_server.auth.accounts import UserFile, UserStore
from live_server.auth.credentials import ApiKeyStore, KeyFile, SecretFile, SigningSecret
from live_server.auth.throttle import Throttle
from live_server.settings import Settings
from live_server.storage import Store


@dataclass
class Backends:
    store: Store
    keys: ApiKeyStore
    users: UserStore
    secrets: SigningSecret

    async def jwt_secret(self, settings: Settings) -> str:
        """The dashboard's signing secret: configured, else kept with the other stores."""
        return settings.jwt_secret or await self.secrets.jwt_secret()


def build_backends(settings: Settings, throttle: Throttle | None = None) -> Backends:
    """The stores, not yet open: `store.open()` opens them all (the database's pool).
    `throttle` counts failed logins (default: in this process)."""
    if settings.database_url is not None:
        from live_server.storage.postgres import (
            Database,
            PostgresKeys,
            PostgresSecrets,
            PostgresStore,
            PostgresUsers,
        )

        db = Database(settings.database_url)
        return Backends(
            store=PostgresStore(db),
            keys=ApiKeyStore(PostgresKeys(db)),
            users=UserStore(PostgresUsers(db), throttle),
            secrets=PostgresSecrets(db),
        )
    from live_server.storage.sqlite import SQLiteStore

    return Backends(
        store=SQLiteStore(settings.data_dir / "conversations.sqlite3"),
        keys=ApiKeyStore(KeyFile(settings.data_dir)),
        users=UserStore(UserFile(settings.data_dir), throttle),
        secrets=SecretFile(settings.data_dir),
    )


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Backends]:
    """The stores, open, for a command that runs once (the CLI)."""
    backends = build_backends(settings)
    await backends.store.open()
    try:
        yield backends
    finally:
        await backends.store.aclose()
