"""`live-server migrate`: copy a data dir's conversations, API keys, accounts and signing secret
into the PostgreSQL database at `LIVE_DATABASE_URL`.

It can be run again: what is in the database already (a conversation, key or user of the same
id or name) is left as it is and counted as skipped. Message ids are the database's own; a
conversation keeps its id, so clients resume it as before.
"""

from __future__ import annotations

import sys

from live_server.auth.accounts import UserFile
from live_server.auth.credentials import JWT_SECRET_FILE, KeyFile
from live_server.errors import ConfigError
from live_server.logs import redact_url
from live_server.settings import Settings
from live_server.storage.postgres import (
    Database,
    PostgresKeys,
    PostgresSecrets,
    PostgresStore,
    PostgresUsers,
)
from live_server.storage.sqlite import SQLiteStore

PAGE = 1000


async def migrate(settings: Settings) -> int:
    if settings.database_url is None:
        raise ConfigError("set LIVE_DATABASE_URL=postgresql://... to the database to copy into")
    sqlite_path = settings.data_dir / "conversations.sqlite3"
    db = Database(settings.database_url)
    store = PostgresStore(db)
    await store.open()
    try:
        copied = skipped = 0
        if sqlite_path.exists():
            source = SQLiteStore(sqlite_path)
            await source.open()
            try:
                for username in await source.usernames():
                    offset = 0
                    while True:
                        infos, _ = await source.conversations(username, offset=offset, limit=PAGE)
                        for info in infos:
                            messages = await source.messages(info.id, offset=0, limit=10**9)
                            if await store.import_conversation(info, messages):
                                copied += 1
                            else:
                                skipped += 1
                        if len(infos) < PAGE:
                            break
                        offset += PAGE
            finally:
                await source.aclose()
        _say(f"conversations: {copied} copied, {skipped} already there")
        keys = PostgresKeys(db)
        added = [await keys.add(r) for r in await KeyFile(settings.data_dir).all()]
        _say(f"API keys: {sum(added)} copied, {len(added) - sum(added)} already there")
        users = PostgresUsers(db)
        added = [await users.add(r) for r in await UserFile(settings.data_dir).all()]
        _say(f"accounts: {sum(added)} copied, {len(added) - sum(added)} already there")
        # The dashboard's tokens and sign-in links made before stay good, unless the database
        # has a secret already (another instance made it), which wins.
        secret_file = settings.data_dir / JWT_SECRET_FILE
        if secret_file.exists():
            mine = secret_file.read_text().strip()
            kept = await PostgresSecrets(db).jwt_secret(mine)
            _say(f"signing secret: {'copied' if kept == mine else 'the database has one already'}")
        _say(f"into {redact_url(settings.database_url)}")
    finally:
        await store.aclose()
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)
