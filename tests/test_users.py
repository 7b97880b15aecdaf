"""Accounts: the CLI, password hashing, `POST /api/auth/login`, and the sign-in URL."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from live_server.auth.accounts import (
    LOGIN_FAILURES,
    LOGIN_FAILURES_PER_CLIENT,
    LOGIN_FAILURES_PER_USER,
    LOGIN_WINDOW_S,
    UserFile,
    UserStore,
    check_password,
    hash_password,
)
from live_server.auth.throttle import RedisThrottle
from live_server.errors import AuthError, ErrorCode, LiveError
from live_server.storage.postgres import Database, PostgresUsers
from tests.client import open_live, text_turn
from tests.conftest import ServerProcess, free_port
from tests.services import RedisServer


def test_password_hashes_are_salted_scrypt():
    a, b = hash_password("s3cret pass"), hash_password("s3cret pass")
    assert a != b and a.startswith("scrypt$")
    assert check_password("s3cret pass", a) and not check_password("s3cret pasS", a)
    assert not check_password("s3cret pass", "md5$whatever")


@pytest.fixture(params=["file", "postgres", "postgres+redis"])
async def users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    """Accounts kept in the data dir's users file, or in PostgreSQL; failed logins counted in
    the process, or in Redis (as with `LIVE_REDIS_URL`)."""
    if request.param == "file":
        yield UserStore(UserFile(tmp_path))
        return
    db = Database(request.getfixturevalue("postgres").database())
    await db.open()
    throttle = None
    if request.param == "postgres+redis":
        redis_url = request.getfixturevalue("redis_server").url
        throttle = RedisThrottle.from_url(redis_url, LOGIN_WINDOW_S)
    try:
        yield UserStore(PostgresUsers(db), throttle)
    finally:
        await db.aclose()
        if throttle is not None:
            await throttle.aclose()


def test_the_users_file_is_private_and_holds_no_password(tmp_path: Path):
    asyncio.run(UserStore(UserFile(tmp_path)).add("ann", "long enough"))
    assert "long enough" not in (tmp_path / "users.json").read_text()
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0


async def lock_out(users: UserStore, name: str, password: str) -> None:
    """`LOGIN_FAILURES` wrong guesses at `name`: then even its right password waits."""
    for _ in range(LOGIN_FAILURES):
        with pytest.raises(AuthError) as caught:
            await users.login(name, "wrong guess")
        assert caught.value.code is ErrorCode.UNAUTHORIZED
    with pytest.raises(AuthError) as caught:
        await users.login(name, password)
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED


async def test_user_store_rules_and_throttle(users: UserStore):
    await users.add("ann", "long enough")
    stored = await users.records.get("ann")
    assert stored is not None and stored.password_hash.startswith("scrypt$")
    with pytest.raises(LiveError, match="exists"):
        await users.add("ann", "another one")
    with pytest.raises(LiveError, match="at least 8"):
        await users.add("bob", "short")
    with pytest.raises(AuthError):
        await users.add("bad name", "long enough")
    assert await users.login("ann", "long enough") == "ann"
    # Guessing is throttled per user and address...
    await lock_out(users, "ann", "long enough")
    # ...so the guesser does not lock the owner out, elsewhere.
    assert await users.login("ann", "long enough", client="192.0.2.7") == "ann"
    # Many addresses guessing one name do, past a much higher bound.
    for i in range(LOGIN_FAILURES_PER_USER):
        with pytest.raises(AuthError):
            await users.login("ann", "wrong guess", client=f"198.51.100.{i}")
    with pytest.raises(AuthError) as caught:
        await users.login("ann", "long enough", client="192.0.2.7")
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    with pytest.raises(AuthError):
        await users.login("nobody", "long enough")
    await users.set_password("ann", "a new password")
    assert await users.remove("ann") and not await users.remove("ann")


async def test_one_client_guessing_many_accounts_is_throttled(users: UserStore):
    await users.add("ann", "long enough")
    assert await users.login("ann", "long enough", client="10.0.0.9") == "ann"
    # Fewer failures per user than the per-user limit, spread over many usernames.
    per_user = LOGIN_FAILURES - 1
    for i in range(LOGIN_FAILURES_PER_CLIENT):
        with pytest.raises(AuthError) as caught:
            await users.login(f"user{i // per_user}", "guess", client="10.0.0.9")
        assert caught.value.code is ErrorCode.UNAUTHORIZED
    # The right password of another account no longer helps from that address...
    with pytest.raises(AuthError) as caught:
        await users.login("ann", "long enough", client="10.0.0.9")
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    # ...while the account itself is not locked for everyone else.
    assert await users.login("ann", "long enough", client="10.0.0.10") == "ann"


async def test_processes_on_one_redis_count_failed_logins_together(
    tmp_path: Path, redis_server: RedisServer
):
    """Two stores (two processes) on one Redis: guesses spread over both meet one limit."""
    one, two = (
        UserStore(UserFile(tmp_path), RedisThrottle.from_url(redis_server.url, LOGIN_WINDOW_S))
        for _ in range(2)
    )
    try:
        await one.add("ann", "long enough")
        for i in range(LOGIN_FAILURES):
            with pytest.raises(AuthError) as caught:
                await (one, two)[i % 2].login("ann", "wrong guess", client="10.0.0.1")
            assert caught.value.code is ErrorCode.UNAUTHORIZED
        for store in (one, two):
            with pytest.raises(AuthError) as caught:
                await store.login("ann", "long enough", client="10.0.0.1")
            assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
        assert await two.login("ann", "long enough", client="10.0.0.2") == "ann"
    finally:
        for store in (one, two):
            assert isinstance(store.throttle, RedisThrottle)
            await store.throttle.aclose()


async def test_without_redis_failed_logins_are_counted_in_the_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Redis unreachable: logins still work, and the limits hold in this process."""
    throttle = RedisThrottle.from_url(f"redis://127.0.0.1:{free_port()}/0", LOGIN_WINDOW_S)
    users = UserStore(UserFile(tmp_path), throttle)
    try:
        await users.add("ann", "long enough")
        assert await users.login("ann", "long enough") == "ann"
        await lock_out(users, "ann", "long enough")
    finally:
        await throttle.aclose()
    warnings = [r.getMessage() for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, not at every login


def cli(server: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "live_server", *args],
        input=stdin,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_login_gives_a_token_that_opens_the_sockets(echo_server: ServerProcess):
    added = cli(echo_server, "user", "add", "quinn", "--password-stdin", stdin="open sesame 1\n")
    assert added.returncode == 0, added.stderr
    assert "quinn" in cli(echo_server, "user", "list").stdout
    url = f"{echo_server.http}/api/auth/login"
    async with httpx.AsyncClient(timeout=30) as http:
        bad = await http.post(url, json={"username": "quinn", "password": "nope"})
        missing = await http.post(url, json={"username": "quinn"})
        good = await http.post(url, json={"username": "quinn", "password": "open sesame 1"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "UNAUTHORIZED"
    assert missing.status_code == 400
    assert good.status_code == 200
    body = good.json()
    assert body["username"] == "quinn" and body["expires_at"].endswith("Z")
    async with open_live(f"{echo_server.ws}/api/live_chat/ws?token={body['token']}") as ws:
        frames = await text_turn(ws, "logged in")
    assert any(f["t"] == "response" for f in frames)
    assert "open sesame" not in echo_server.logs()

    changed = cli(
        echo_server, "user", "passwd", "quinn", "--password-stdin", stdin="another one 2\n"
    )
    assert changed.returncode == 0
    assert cli(echo_server, "user", "remove", "quinn").returncode == 0
    assert cli(echo_server, "user", "remove", "quinn").returncode == 1


async def test_repeated_failures_are_throttled_with_429(echo_server: ServerProcess):
    cli(echo_server, "user", "add", "rob", "--password-stdin", stdin="right password\n")
    url = f"{echo_server.http}/api/auth/login"
    async with httpx.AsyncClient(timeout=30) as http:
        codes = [
            (await http.post(url, json={"username": "rob", "password": "guess"})).status_code
            for _ in range(LOGIN_FAILURES + 1)
        ]
    assert codes == [401] * LOGIN_FAILURES + [429]


def test_serve_makes_a_sign_in_url_that_works_and_keeps_it_out_of_the_log(
    echo_server: ServerProcess,
):
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/#token=(\S+)", echo_server.sign_in_url())
    assert match and int(match.group(1)) == echo_server.port
    token = match.group(2)
    # The log (a file here, as under systemd or docker) says where the link is, not the link.
    assert token not in echo_server.logs() and "#token=" not in echo_server.logs()
    assert str(echo_server.data_dir / "sign-in-url") in echo_server.logs()
    assert (echo_server.data_dir / "sign-in-url").stat().st_mode & 0o777 == 0o600
    # The page is served, and the token is a dashboard token for the local user.
    page = httpx.get(f"{echo_server.http}/")
    assert page.status_code == 200 and "<title>Live</title>" in page.text
    for asset in ("/vendor/vad/bundle.min.js", "/vendor/vad/silero_vad_v5.onnx",
                  "/vendor/ort/ort.wasm.min.js"):  # fmt: skip
        assert httpx.head(f"{echo_server.http}{asset}").status_code == 200, asset
    claims = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "==").decode())
    assert claims["username"] == "local"


async def test_login_throttles_a_client_address_and_refuses_oversize_bodies(
    server_factory: Callable[..., ServerProcess],
):
    # A server of its own: this test leaves its client address throttled for a minute.
    server = server_factory(LIVE_ECHO_DELAY_MS="0", LIVE_MAX_FRAME_BYTES="65536")
    cli(server, "user", "add", "sam", "--password-stdin", stdin="right password\n")
    url = f"{server.http}/api/auth/login"
    async with httpx.AsyncClient(timeout=30) as http:
        huge = await http.post(url, content=b"{" + b" " * 100_000 + b"}")
        assert huge.status_code == 413  # a size limit, not the login throttle
        # A forwarded-for header, rotated, does not make each guess come from elsewhere: no
        # proxy is trusted unless LIVE_TRUSTED_PROXIES names it.
        codes = [
            (
                await http.post(
                    url,
                    json={"username": f"x{i}", "password": "guess"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            ).status_code
            for i in range(LOGIN_FAILURES_PER_CLIENT)
        ]
        refused = await http.post(url, json={"username": "sam", "password": "right password"})
    assert codes == [401] * LOGIN_FAILURES_PER_CLIENT
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "LIMIT_EXCEEDED"
    assert "too many failed logins" in server.logs()
