"""The SQLite store, its migrations, and how stored messages become the model's history."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from live_server.core.conversation import Conversation, Exchange, exchanges
from live_server.core.turn import Turn
from live_server.errors import ErrorCode
from live_server.storage import NotYours, StorageError, Store, TurnRecord, claim
from live_server.storage.postgres import Database, PostgresStore
from live_server.storage.sqlite import MIGRATIONS, SQLiteStore, migrate


def record(user: str, assistant: str, at: float, **kw: object) -> TurnRecord:
    return TurnRecord(user, assistant, "text", at, at + 1, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Stores on one database, each new one as another process would open it."""
    if request.param == "sqlite":
        return lambda: SQLiteStore(tmp_path / "c.sqlite3")
    url = request.getfixturevalue("postgres").database()
    return lambda: PostgresStore(Database(url))


async def test_turns_are_saved_paged_and_owned(make_store: Callable[[], Store]):
    store = make_store()
    await store.open()
    try:
        saved = await store.save_turn("c1", "ann", record("hello", "hi there", 100.0))
        assert saved.assistant_message_id == saved.user_message_id + 1
        await store.save_turn(
            "c1", "ann", record("go on", "I was", 200.0, interrupted=True, metrics={"x": 1})
        )
        await store.save_turn("c2", "ann", record("other", "yes", 300.0))
        with pytest.raises(NotYours) as caught:
            await store.save_turn("c1", "bob", record("mine?", "no", 400.0))
        assert caught.value.code is ErrorCode.FORBIDDEN

        info = await store.get("c1")
        assert info is not None and info.username == "ann" and info.title == "hello"
        assert info.message_count == 4 and info.updated_at == 201.0

        last = await store.history("c1", limit=3)
        assert [m.content for m in last] == ["hi there", "go on", "I was"]
        assert last[-1].interrupted and last[-1].metrics == {"x": 1}
        page = await store.messages("c1", offset=1, limit=2)
        assert [m.content for m in page] == ["hi there", "go on"]

        items, total = await store.conversations("ann", offset=0, limit=1)
        assert total == 2 and [i.id for i in items] == ["c2"]
        assert (await store.conversations("bob", offset=0, limit=10)) == ([], 0)

        assert await claim(store, "c1", "ann") == ("c1", True)
        assert await claim(store, "new-one", "ann") == ("new-one", False)
        with pytest.raises(NotYours):
            await claim(store, "c1", "bob")
    finally:
        await store.aclose()

    # Reopened: everything is still there and the schema is not migrated twice.
    store = make_store()
    await store.open()
    try:
        assert len(await store.messages("c1", offset=0, limit=100)) == 4
    finally:
        await store.aclose()


def test_migrations_are_versioned(tmp_path: Path):
    db = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    assert migrate(db) == len(MIGRATIONS)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert migrate(db) == len(MIGRATIONS)  # nothing left to do
    db.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="newer than this server"):
        migrate(db)


async def test_a_closed_store_says_so(tmp_path: Path):
    store = SQLiteStore(tmp_path / "x.sqlite3")
    with pytest.raises(StorageError):
        await store.get("c1")


def test_stored_messages_pair_into_exchanges_and_the_budget_drops_the_oldest():
    from live_server.storage import StoredMessage

    def msg(i: int, role: str, text: str, interrupted: bool = False) -> StoredMessage:
        return StoredMessage(i, "c", role, text, float(i), "text", interrupted)  # type: ignore[arg-type]

    stored = [
        msg(1, "assistant", "orphan reply"),  # the page began mid-exchange
        msg(2, "user", "a"),
        msg(3, "assistant", "b"),
        msg(4, "user", "c"),
        msg(5, "assistant", "d", interrupted=True),
        msg(6, "user", "unanswered"),
    ]
    assert exchanges(stored) == [Exchange("a", "b"), Exchange("c", "d", interrupted=True)]

    history = [Exchange("x" * 50, "y" * 50), Exchange("short", "reply")]
    convo = Conversation(system_prompt="", max_messages=40, max_chars=30, history=history)
    assert [m["content"] for m in convo.messages_for("new")] == ["short", "reply", "new"]
    convo = Conversation(system_prompt="", max_messages=40, max_chars=200, history=history)
    assert len(convo.messages_for("new")) == 5


@pytest.mark.parametrize(
    ("played_ms", "heard"),
    [
        (None, "One. Two. Three."),
        (0, ""),
        (999, ""),
        (1000, "One."),
        (1500, "One."),
        (1800, "One. Two."),
        (10_000, "One. Two. Three."),
    ],
)
def test_played_ms_keeps_the_sentences_whose_audio_fits(played_ms: int | None, heard: str):
    turn = Turn(id=1, user_text="u", input_type="text")
    turn.delivered = [("One.", 1000), ("Two.", 800), ("Three.", 700)]
    turn.played_ms = played_ms
    assert turn.heard_text() == heard


def _open_at_once(path: Path, start: Any) -> str:
    async def open_and_close() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.aclose()

    start.wait()
    try:
        asyncio.run(open_and_close())
    except Exception as exc:  # returned, so that the assertion shows it
        return repr(exc)
    return "open"


def test_servers_opening_a_new_database_together_all_open(tmp_path: Path):
    """The first opener of a new file switches it to WAL; the others, told at once that it is
    locked (SQLite does not wait out that lock), try again instead of failing to start."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(6) as pool:
        for round_ in range(10):
            start = manager.Barrier(6)
            path = tmp_path / f"new-{round_}.sqlite3"
            assert pool.starmap(_open_at_once, [(path, start)] * 6) == ["open"] * 6


def test_servers_starting_together_migrate_once(tmp_path: Path):
    """Several servers on one data dir: each step runs once, nobody fails."""
    import threading

    start = threading.Barrier(4)
    results: list[object] = []

    def open_and_migrate() -> None:
        db = sqlite3.connect(tmp_path / "shared.sqlite3", isolation_level=None)
        db.execute("PRAGMA busy_timeout = 5000")
        start.wait()
        try:
            results.append(migrate(db))
        except Exception as exc:  # collected, so the assertion shows it
            results.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=open_and_migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [len(MIGRATIONS)] * 4


async def test_a_batch_commits_together_refuses_alone_and_waits_out_a_lock(tmp_path: Path):
    path = tmp_path / "b.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.save_turn("taken", "ann", record("first", "one", 1.0))
        # Asked for in one turn of the loop: one transaction, ids in the order asked.
        batch = [
            store.save_turn(f"c{i % 3}", "bob", record(f"q{i}", f"a{i}", 10.0 + i))
            for i in range(30)
        ]
        refused = store.save_turn("taken", "bob", record("mine?", "no", 50.0))
        outcomes = await asyncio.gather(*batch, refused, return_exceptions=True)
        saved, no = outcomes[:-1], outcomes[-1]
        assert isinstance(no, NotYours)
        ids = [s.user_message_id for s in saved]  # type: ignore[union-attr]
        assert ids == sorted(ids) and len(set(ids)) == 30
        for i, s in enumerate(saved):
            kept = await store.messages(f"c{i % 3}", offset=0, limit=100)
            by_id = {m.id: m.content for m in kept}
            assert by_id[s.user_message_id] == f"q{i}"  # type: ignore[union-attr]
            assert by_id[s.assistant_message_id] == f"a{i}"  # type: ignore[union-attr]
        assert [m.content for m in await store.history("taken", 10)] == ["first", "one"]

        # Another process holds the write lock: the save waits for it, and the loop does not.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.create_task(store.save_turn("c0", "bob", record("late", "x", 99.0)))
        ticks = 0
        while ticks < 20:  # the loop keeps turning while the save waits
            await asyncio.sleep(0.001)
            ticks += 1
        assert not pending.done()
        other.execute("COMMIT")
        other.close()
        late = await asyncio.wait_for(pending, timeout=5)
        assert (await store.messages("c0", offset=0, limit=100))[-2].id == late.user_message_id
    finally:
        await store.aclose()
