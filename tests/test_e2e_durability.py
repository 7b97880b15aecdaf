"""An `end` means the turn is stored: killing the server loses no acknowledged turn."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import Callable

from tests.client import open_live, recv, send
from tests.conftest import ServerProcess

SOCKETS = 20
UNDER_LOAD = 600
# While the test holds the database's write lock (as a slow disk or another process might),
# the server cannot save: a turn whose `end` still came out would be lost.
STALLED_WAIT_S = 2.0


async def test_kill_9_under_load_loses_no_acknowledged_turn(
    server_factory: Callable[..., ServerProcess],
):
    server = server_factory(LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none")
    url = server.live_url("dora")
    acknowledged: dict[str, bool] = {}  # user text -> whether its end said interrupted
    enough = asyncio.Event()
    more = asyncio.Event()
    stalled_at: int | None = None

    async def talk(n: int) -> None:
        async with open_live(url) as ws:
            turn = 0
            while True:
                turn += 1
                text = f"socket {n} turn {turn}"
                await send(ws, {"t": "text_input", "text": text})
                if turn % 5 == 0:  # some are cut off: an interrupted turn is stored too
                    await send(ws, {"t": "interrupt"})
                while (frame := await recv(ws))["t"] != "end":
                    pass
                acknowledged[text] = bool(frame["data"].get("interrupted"))
                if len(acknowledged) >= UNDER_LOAD:
                    enough.set()
                if stalled_at is not None and len(acknowledged) >= stalled_at + SOCKETS:
                    more.set()

    path = server.data_dir / "conversations.sqlite3"
    locker = sqlite3.connect(path, isolation_level=None)
    clients = [asyncio.create_task(talk(n)) for n in range(SOCKETS)]
    try:
        await asyncio.wait_for(enough.wait(), timeout=120)
        locker.execute("BEGIN IMMEDIATE")
        stalled_at = len(acknowledged)
        # Ends already on their way may still arrive; a turn ended after this is not stored.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(more.wait(), timeout=STALLED_WAIT_S)
        server.proc.send_signal(signal.SIGKILL)  # mid-load: turns are still streaming
        server.proc.wait(timeout=10)
    finally:
        locker.close()
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    acked = dict(acknowledged)  # taken after the kill: nothing can be added by now

    assert not more.is_set(), "turns were acknowledged while the store could not save them"
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT u.content, a.interrupted FROM messages u JOIN messages a "
        "ON a.id = u.id + 1 AND a.role = 'assistant' WHERE u.role = 'user'"
    ).fetchall()
    stored = dict(rows)
    lost = [text for text in acked if text not in stored]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged turns were lost: {lost[:5]}"
    assert sum(acked.values()) > 0, "some of the turns were interrupted"
    assert all(bool(stored[t]) == cut for t, cut in acked.items())
