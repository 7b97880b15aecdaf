"""PostgreSQL (`LIVE_DATABASE_URL`): real servers on a private PostgreSQL. Two instances share
keys and conversations, a killed instance loses no acknowledged turn, a data dir moves in with
`live-server migrate`, and a database that is missing or goes away is said plainly."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psycopg

from live_server.storage import TurnRecord
from live_server.storage.postgres import MIGRATIONS, Database, PostgresStore
from tests.client import deltas, of, open_live, send, text_turn, until
from tests.conftest import ServerProcess, clean_env, free_port, refused_start, start_server
from tests.services import PostgresServer

SECRET = "a-shared-signing-secret-of-at-least-32-bytes"


def instance(tmp: Path, name: str, url: str, **settings: str) -> ServerProcess:
    """A server with a data dir of its own, on the shared database."""
    root = tmp / name
    root.mkdir()
    defaults = {"LIVE_ECHO_DELAY_MS": "0", "LIVE_TTS": "none"}
    return start_server(
        root, **{**defaults, "LIVE_DATABASE_URL": url, "LIVE_JWT_SECRET": SECRET, **settings}
    )


async def add_user(server: ServerProcess, name: str, password: str) -> None:
    """An account, added with the CLI as an operator would."""
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "live_server", "user", "add", name, "--password-stdin"],
        input=f"{password}\n".encode(),
        env=server.env,
        check=True,
        timeout=60,
    )


def key_url(server: ServerProcess, key: str, user: str, conversation: str | None = None) -> str:
    url = f"{server.ws}/api/v1/live/ws?username={user}&api_key={key}"
    return url + (f"&conversation_id={conversation}" if conversation else "")


async def messages(server: ServerProcess, conversation_id: str, key: str, user: str) -> Any:
    url = f"{server.http}/api/v1/chat/sessions/{conversation_id}/messages"
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(url, params={"username": user}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()["messages"]


# --- the store itself -----------------------------------------------------------------------


async def test_servers_starting_together_migrate_once(postgres: PostgresServer):
    url = postgres.database()
    dbs = [Database(url) for _ in range(4)]
    await asyncio.gather(*(db.open() for db in dbs))
    try:
        rows = await dbs[0].fetch("SELECT version FROM live_schema ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
        assert await dbs[1].migrate() == len(MIGRATIONS)  # nothing left to do
    finally:
        await asyncio.gather(*(db.aclose() for db in dbs))


async def test_text_postgres_cannot_hold_is_stored_replaced(postgres: PostgresServer):
    store = PostgresStore(Database(postgres.database()))
    await store.open()
    try:
        turn = TurnRecord("nul\0 and \ud800 lone", "ok\0", "text", 1.0, 2.0)
        saved = await store.save_turn("c1", "ann", turn)
        stored = await store.history("c1", 10)
        assert [m.content for m in stored] == ["nul\ufffd and \ufffd lone", "ok\ufffd"]
        await store.amend_reply(saved.assistant_message_id, "cut\0", interrupted=True, metrics={})
        assert (await store.history("c1", 1))[0].content == "cut\ufffd"
    finally:
        await store.aclose()


# --- several instances ----------------------------------------------------------------------


async def test_two_instances_share_keys_conversations_and_accounts(
    postgres: PostgresServer, tmp_path: Path
):
    url = postgres.database()
    # No LIVE_JWT_SECRET: the instances take the dashboard's signing secret from the database.
    a, b = (instance(tmp_path, name, url, LIVE_JWT_SECRET="") for name in "ab")
    try:
        # A dashboard token made by one instance's CLI opens the other's JWT socket.
        async with open_live(f"{b.ws}/api/live_chat/ws?token={a.token('cy')}") as ws:
            assert "message number 1" in deltas(await text_turn(ws, "Hello."))
        key = a.cli("apikey", "create", "--name", "shared")  # the CLI of one instance
        async with open_live(key_url(a, key, "ann")) as ws:
            conversation = ws.conversation["id"]
            await text_turn(ws, "My name is Ada.")
        # The other instance knows the key, and continues the conversation: its model is
        # given the turn the first one took (the echo model counts the user's messages).
        async with open_live(key_url(b, key, "ann", conversation)) as ws:
            assert ws.conversation == {"id": conversation, "resumed": True, "messages": 2}
            frames = await text_turn(ws, "And my name?")
            assert "message number 2 from you" in deltas(frames)
        assert len(await messages(a, conversation, key, "ann")) == 4
        # An account added through one instance signs in on the other.
        await add_user(a, "bob", "long enough")
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                f"{b.http}/api/auth/login", json={"username": "bob", "password": "long enough"}
            )
        assert r.status_code == 200, r.text
        # A key revoked on one instance ends its sockets on the other.
        key_id = next(line.split("\t")[0] for line in b.cli("apikey", "list").splitlines())
        async with open_live(key_url(b, key, "ann")) as ws:
            a.cli("apikey", "revoke", key_id)
            frames = await until(ws, "error", timeout=10)
            assert frames[-1]["code"] == "UNAUTHORIZED"
    finally:
        a.stop()
        b.stop()


async def test_a_killed_instance_loses_no_acknowledged_turn(
    postgres: PostgresServer, tmp_path: Path
):
    url = postgres.database()
    a, b = instance(tmp_path, "a", url), instance(tmp_path, "b", url)
    key = a.cli("apikey", "create")
    acknowledged: dict[str, int] = {}
    conversations: dict[str, str] = {}
    killed = asyncio.Event()

    async def talk(n: int) -> None:
        user = f"user{n}"
        with contextlib.suppress(Exception):  # the instance dies under it
            async with open_live(key_url(a, key, user)) as ws:
                conversations[user] = ws.conversation["id"]
                for i in range(1000):
                    await send(ws, {"t": "text_input", "text": f"turn {i}"})
                    await until(ws, "end")
                    acknowledged[user] = i + 1
                    if sum(acknowledged.values()) >= 60:
                        killed.set()

    try:
        talkers = [asyncio.create_task(talk(n)) for n in range(6)]
        async with asyncio.timeout(60):
            await killed.wait()
        a.proc.kill()  # kill -9, mid-load
        a.proc.wait()
        async with asyncio.timeout(30):
            await asyncio.gather(*talkers)
        # Every turn acknowledged with `end` is in the database, and the other instance
        # resumes each conversation from there.
        for user, count in acknowledged.items():
            stored = await messages(b, conversations[user], key, user)
            texts = [m["content"] for m in stored if m["role"] == "user"]
            assert texts[:count] == [f"turn {i}" for i in range(count)]
            async with open_live(key_url(b, key, user, conversations[user])) as ws:
                assert ws.conversation["resumed"] is True
                assert ws.conversation["messages"] >= 2 * count
                await text_turn(ws, "still there?")
    finally:
        a.stop()
        b.stop()


# --- moving in, and faults ------------------------------------------------------------------


async def test_migrate_moves_a_data_dir_into_postgres(postgres: PostgresServer, tmp_path: Path):
    (tmp_path / "old").mkdir()
    old = start_server(tmp_path / "old", LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none")
    try:
        key = old.cli("apikey", "create", "--name", "kept")
        token = old.token("ann")  # signed with the secret in the data dir
        async with open_live(key_url(old, key, "ann")) as ws:
            conversation = ws.conversation["id"]
            await text_turn(ws, "Remember Lyon.")
    finally:
        old.stop()
    url = postgres.database()
    env = {**old.env, "LIVE_DATABASE_URL": url}
    run = [sys.executable, "-m", "live_server", "migrate"]
    first = await asyncio.to_thread(
        subprocess.run, run, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "conversations: 1 copied" in first.stderr and "API keys: 1 copied" in first.stderr
    assert "signing secret: copied" in first.stderr
    again = await asyncio.to_thread(
        subprocess.run, run, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "conversations: 0 copied, 1 already there" in again.stderr

    new = instance(tmp_path, "new", url, LIVE_JWT_SECRET="")
    try:
        async with open_live(key_url(new, key, "ann", conversation)) as ws:
            assert ws.conversation == {"id": conversation, "resumed": True, "messages": 2}
        # The dashboard's tokens made before the move stay good.
        async with open_live(f"{new.ws}/api/live_chat/ws?token={token}") as ws:
            await text_turn(ws, "Still me.")
    finally:
        new.stop()


def test_an_unreachable_database_stops_the_start_and_says_where(tmp_path: Path):
    port = free_port()  # nothing listens there
    url = f"postgresql://live:hunter2secret@127.0.0.1:{port}/live"
    env = clean_env(LIVE_DATA_DIR=str(tmp_path / "data"), LIVE_DATABASE_URL=url, LIVE_STT="none")
    out = refused_start(env)
    assert "LIVE_DATABASE_URL" in out.stderr and f"127.0.0.1:{port}" in out.stderr
    assert "hunter2secret" not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


async def test_a_database_going_away_mid_run_fails_turns_plainly_and_heals(tmp_path: Path):
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="live-pg-")))
    pg.start()
    server = None
    try:
        server = instance(tmp_path, "s", pg.database())
        key = server.cli("apikey", "create")
        async with open_live(key_url(server, key, "ann")) as ws:
            conversation = ws.conversation["id"]
            await text_turn(ws, "before")
            pg.stop()
            # The turn is answered, then its save fails: a coded error, and its one `end`.
            await send(ws, {"t": "text_input", "text": "during"})
            frames = await until(ws, "end", timeout=30)
            errors = of(frames, "error")
            assert [e["code"] for e in errors] == ["STORAGE_ERROR"], frames
            assert len(of(frames, "end")) == 1
            pg.start()
            await text_turn(ws, "after")  # the pool reconnects by itself
        with psycopg.connect(server.env["LIVE_DATABASE_URL"]) as c:
            rows = c.execute(
                "SELECT content FROM messages WHERE conversation_id = %s AND role = 'user' "
                "ORDER BY id",
                (conversation,),
            ).fetchall()
        assert [r[0] for r in rows] == ["before", "after"]
    finally:
        if server is not None:
            server.stop()
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
