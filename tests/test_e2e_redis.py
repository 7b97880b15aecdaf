"""Several processes through Redis (`LIVE_REDIS_URL`): two instances on one PostgreSQL and one
Redis hear each other's turns and chat replies, a Redis restart kills no socket, and
`serve --workers N` runs N processes on one port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live_server.auth.accounts import LOGIN_FAILURES
from tests.client import (
    chat_until_end,
    deltas,
    open_live,
    open_socket,
    recv,
    send,
    text_turn,
)
from tests.conftest import ServerProcess, clean_env, start_server, stub_llm
from tests.services import PostgresServer, RedisServer
from tests.stubs import DEFAULT_REPLY, StubOpenAI
from tests.test_e2e_persistence import heard_sentences
from tests.test_e2e_postgres import add_user, instance, key_url
from tests.test_e2e_slow_client import wait_for_log
from tests.test_e2e_voice import children_of


@contextlib.contextmanager
def pair(
    tmp: Path, postgres: PostgresServer, redis: RedisServer, **settings: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two instances on one new database and one Redis, stopped after."""
    url = postgres.database()
    a = instance(tmp, "a", url, LIVE_REDIS_URL=redis.url, **settings)
    try:
        b = instance(tmp, "b", url, LIVE_REDIS_URL=redis.url, **settings)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


async def test_a_conversation_open_on_two_instances_hears_both(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
):
    with pair(tmp_path, postgres, redis_server) as (a, b):
        key = a.cli("apikey", "create")
        async with open_live(key_url(a, key, "ann")) as on_a:
            conversation = on_a.conversation["id"]
            await text_turn(on_a, "first, on a")
            async with open_live(key_url(b, key, "ann", conversation)) as on_b:
                # Each side's model is given the other's turns, without reconnecting (the
                # echo model counts the user messages it is given).
                frames = await text_turn(on_b, "second, on b")
                assert "message number 2 from you" in deltas(frames)
                frames = await _heard_turn(on_a, "third, on a", 3)
                assert "message number 3 from you" in deltas(frames)


async def _heard_turn(ws: object, text: str, number: int) -> list[dict[str, object]]:
    """A turn whose model should see `number` user messages: the other instance's exchange
    travels through Redis after its `end`, so a turn taken at once may be a moment early;
    retried (bounded) until it is heard."""
    async with asyncio.timeout(10):
        while True:
            frames = await text_turn(ws, text)  # type: ignore[arg-type]
            if f"message number {number} from you" in deltas(frames):
                return frames
            number += 1  # the early turn is history too


async def test_a_reply_cut_on_one_instance_is_cut_in_the_others_history(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path, llm_stub: StubOpenAI
):
    """`played_ms` after a reply cuts it where the client stopped playing; a socket on the
    same conversation on another instance, open since before the cut, gives its model the cut
    reply, not the whole one it loaded."""
    with pair(tmp_path, postgres, redis_server, LIVE_TTS="espeak", **stub_llm(llm_stub)) as (a, b):
        key = a.cli("apikey", "create")
        async with open_live(key_url(a, key, "ann")) as on_a:
            frames = await text_turn(on_a, "Tell me the eight sentences.")
            first, duration = heard_sentences(frames, [])[0]
            conversation = on_a.conversation["id"]
            async with open_live(key_url(b, key, "ann", conversation)) as on_b:
                await send(on_a, {"t": "interrupt", "played_ms": duration + 10})
                cut = {"role": "assistant", "content": f"{first} [interrupted by the user]"}
                # The cut reaches b through Redis a moment after a stores it: a few turns (all
                # within the model's history window) until it is heard.
                asked = {"role": "user", "content": "Tell me the eight sentences."}
                for _ in range(8):
                    await text_turn(on_b, "What did you say?")
                    history = llm_stub.chat_requests[-1]["messages"]
                    reply = history[history.index(asked) + 1]
                    if reply == cut:
                        break
                    assert reply["content"] == DEFAULT_REPLY  # the whole reply: not heard yet
                else:
                    pytest.fail("the cut made on a never reached the history on b")


async def test_a_chat_session_bound_on_one_instance_hears_replies_run_on_the_other(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
):
    with pair(tmp_path, postgres, redis_server) as (a, b):
        key = a.cli("apikey", "create")
        chat = "&ct=chat"
        async with (
            open_socket(key_url(a, key, "ann") + chat) as sender,
            open_socket(key_url(b, key, "ann") + chat) as listener,
        ):
            await send(sender, {"ct": "chat", "t": "send", "session_id": "s1", "message": "hi"})
            await chat_until_end(sender)
            await send(listener, {"ct": "chat", "t": "bind", "session_id": "s1"})
            assert (await recv(listener))["type"] == "session_bound"
            message = {"ct": "chat", "t": "send", "session_id": "s1", "message_id": "m1"}
            await send(sender, {**message, "message": "heard over there?"})
            sent, heard = await asyncio.gather(
                chat_until_end(sender, "m1"), chat_until_end(listener, "m1")
            )
            # (A listener bound just after a reply may hear that reply's last frames: they
            # reach the other instance a moment after they reach the sender.)
            heard = [f for f in heard if f.get("message_id") == "m1"]
            assert heard == sent and heard[-1]["type"] == "end"


async def test_a_redis_restart_kills_no_socket_and_heals(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
):
    with pair(tmp_path, postgres, redis_server) as (a, b):
        key = a.cli("apikey", "create")
        async with open_live(key_url(a, key, "ann")) as on_a:
            conversation = on_a.conversation["id"]
            await text_turn(on_a, "one")
            async with open_live(key_url(b, key, "ann", conversation)) as on_b:
                redis_server.stop()
                await text_turn(on_a, "two, with redis away")  # serves alone
                await text_turn(on_b, "three, with redis away")
                redis_server.start()
                # Healed: once the listeners are back, b's turns reach a again.
                await wait_for_log(a, "is back after")
                await text_turn(on_b, "four, on b")
                frames = await _heard_turn(on_a, "five, on a", 4)
                assert frames
        assert "is unreachable" in a.logs() and "is back after" in a.logs()


async def test_failed_logins_are_counted_across_instances(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
):
    """Guesses spread over two instances behind one address meet one limit."""
    with pair(tmp_path, postgres, redis_server) as (a, b):
        await add_user(a, "bob", "long enough")
        async with httpx.AsyncClient(timeout=30) as http:

            async def login(server: ServerProcess, password: str) -> httpx.Response:
                body = {"username": "bob", "password": password}
                return await http.post(f"{server.http}/api/auth/login", json=body)

            for i in range(LOGIN_FAILURES):
                assert (await login((a, b)[i % 2], "wrong guess")).status_code == 401
            for server in (a, b):
                r = await login(server, "long enough")
                assert r.status_code == 429, r.text
                assert r.json()["error"]["code"] == "LIMIT_EXCEEDED"


def test_workers_need_redis(tmp_path: Path):
    env = clean_env(LIVE_DATA_DIR=str(tmp_path / "data"), LIVE_STT="none")
    out = subprocess.run(
        [sys.executable, "-m", "live_server", "serve", "--workers", "2", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--workers 2 needs LIVE_REDIS_URL" in out.stderr


async def test_two_workers_serve_hundreds_of_sockets_on_one_port_evenly(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
):
    """Each worker listens on a socket of its own, so the kernel deals connections out evenly
    (two workers accepting from one shared socket took from 22 % to 45 % to the one with
    fewer, run to run). The port stays closed to any other server."""
    server = start_server(
        tmp_path,
        "--workers",
        "2",
        LIVE_DATABASE_URL=postgres.database(),
        LIVE_REDIS_URL=redis_server.url,
        LIVE_TTS="none",
        LIVE_ECHO_DELAY_MS="0",
    )
    sockets = 300
    try:
        key = server.cli("apikey", "create")
        opened, release = asyncio.Semaphore(0), asyncio.Event()

        async def one(n: int) -> None:
            async with open_live(key_url(server, key, f"u{n}")) as ws:
                await text_turn(ws, f"hello {n}")
                opened.release()
                await release.wait()

        async with asyncio.timeout(120), asyncio.TaskGroup() as group:
            for n in range(sockets):
                group.create_task(one(n))
            for _ in range(sockets):
                await opened.acquire()
            pids = children_of(server.proc.pid)
            held = sockets_per_process(pids, server.port, ESTABLISHED)
            release.set()
        listening = [s for s in sockets_per_process(pids, server.port, LISTEN).values() if s]
        assert len(listening) == 2 and not listening[0] & listening[1], listening
        workers = sorted(len(s) for s in held.values() if s)
        assert sum(workers) == sockets, workers
        assert len(workers) == 2 and workers[0] >= 0.4 * sockets, workers
        # Sharing the port among its own workers does not open it to another server.
        other = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "live_server", "serve", "--port", str(server.port)],
            env=clean_env(LIVE_DATA_DIR=str(tmp_path / "other"), LIVE_STT="none"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"cannot listen on 127.0.0.1:{server.port}" in other.stderr
    finally:
        server.stop()


ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


def sockets_per_process(pids: set[int], port: int, state: str) -> dict[int, set[str]]:
    """The TCP sockets on local `port` in `state` that each process holds."""
    wanted = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    wanted.add(f"socket:[{fields[9]}]")
    held: dict[int, set[str]] = {}
    for pid in pids:
        held[pid] = set()
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if (link := os.readlink(fd)) in wanted:
                        held[pid].add(link)
    return held
