"""Authentication on every endpoint, against the real server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import deltas, open_socket, recv, send, text_turn
from tests.conftest import ServerProcess

# The last two are the paths AstrBot 4.29's dashboard uses.
JWT_PATHS = [
    "/api/live_chat/ws",
    "/api/unified_chat/ws",
    "/api/v1/live-chat/ws",
    "/api/v1/unified-chat/ws",
]
KEY_PATHS = ["/api/v1/live/ws", "/v1/live/ws"]


def secret(server: ServerProcess) -> str:
    return (server.data_dir / "jwt_secret").read_text().strip()


async def closed_with(url: str, **kwargs: object) -> tuple[int | None, str | None, list[dict]]:
    """Connect and read until the server closes; (close code, reason, frames received)."""
    frames = []
    async with open_socket(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(await recv(ws, timeout=10))
        return ws.close_code, ws.close_reason, frames


def unsigned_token(username: str) -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = {"username": username, "exp": int(time.time()) + 600}
    body = jwt.utils.base64url_encode(json.dumps(claims).encode())
    return f"{header.decode()}.{body.decode()}."


@pytest.mark.parametrize("path", JWT_PATHS)
async def test_jwt_sockets_reject_bad_tokens(echo_server: ServerProcess, path: str):
    key = secret(echo_server)
    now = int(time.time())
    cases = {
        "": "Missing authentication token",
        "?token=": "Missing authentication token",
        "?token=" + jwt.encode({"username": "a", "exp": now - 10}, key, "HS256"): "Token expired",
        "?token="
        + jwt.encode({"username": "a", "exp": now + 60}, "w" * 48, "HS256"): "Invalid token",
        "?token=" + unsigned_token("a"): "Invalid token",
        "?token=" + jwt.encode({"username": "a"}, key, "HS256"): "Invalid token",
        "?token=" + jwt.encode({"exp": now + 60}, key, "HS256"): "Invalid token",
        "?token=not.a.jwt": "Invalid token",
    }
    for query, reason in cases.items():
        code, got, frames = await closed_with(f"{echo_server.ws}{path}{query}")
        assert (code, got) == (1008, reason), query
        assert frames == []


@pytest.mark.parametrize("path", JWT_PATHS)
async def test_jwt_sockets_accept_a_cli_token(echo_server: ServerProcess, path: str):
    token = echo_server.cli("token", "carol", "--ttl", "60")
    claims = jwt.decode(token, secret(echo_server), algorithms=["HS256"])
    assert claims["username"] == "carol" and claims["exp"] - time.time() <= 60
    async with open_socket(f"{echo_server.ws}{path}?token={token}") as ws:
        frames = await text_turn(ws, "token works")
    assert "token works" in deltas(frames)


async def test_astrbot_4_29_paths_keep_their_modes(echo_server: ServerProcess):
    token = echo_server.token("carol")
    bind = {"ct": "chat", "t": "bind", "session_id": "nowhere"}
    async with open_socket(f"{echo_server.ws}/api/v1/unified-chat/ws?token={token}") as ws:
        await recv(ws)  # conversation
        await send(ws, bind)
        answer = await recv(ws)
        assert answer["ct"] == "chat" and answer["code"] == "NOT_FOUND"
    async with open_socket(f"{echo_server.ws}/api/v1/live-chat/ws?token={token}") as ws:
        await recv(ws)
        await send(ws, bind)  # live only: `ct` is not read, and `bind` is no live frame
        answer = await recv(ws)
        assert "ct" not in answer and answer["code"] == "INVALID_MESSAGE_FORMAT"


@pytest.fixture(scope="module")
def api_key(echo_server: ServerProcess) -> str:
    key = echo_server.cli("apikey", "create", "--name", "tests")
    assert key.startswith("lsk_") and len(key) > 40
    return key


def test_only_a_hash_of_the_key_is_stored(echo_server: ServerProcess, api_key: str):
    stored = (echo_server.data_dir / "api_keys.json").read_text()
    assert api_key not in stored
    assert api_key[4:20] not in stored
    listing = echo_server.cli("apikey", "list")
    assert "tests" in listing and api_key not in listing


@pytest.mark.parametrize("path", KEY_PATHS)
@pytest.mark.parametrize("how", ["query", "bearer", "x-api-key"])
async def test_api_key_socket_accepts_the_key_three_ways(
    echo_server: ServerProcess, api_key: str, path: str, how: str
):
    url = f"{echo_server.ws}{path}?username=dave.o-k_1@x"
    headers = {}
    if how == "query":
        url += f"&api_key={api_key}"
    elif how == "bearer":
        headers["Authorization"] = f"Bearer {api_key}"
    else:
        headers["X-API-Key"] = api_key
    async with open_socket(url, additional_headers=headers) as ws:
        frames = await text_turn(ws, f"via {how}")
    assert f"via {how}" in deltas(frames)


@pytest.mark.parametrize("path", KEY_PATHS)
async def test_api_key_socket_failures_send_a_coded_error_then_close(
    echo_server: ServerProcess, api_key: str, path: str
):
    base = f"{echo_server.ws}{path}"
    cases = [
        ("?username=alice", "UNAUTHORIZED"),
        ("?username=alice&api_key=lsk_wrong", "UNAUTHORIZED"),
        (f"?api_key={api_key}", "BAD_USER"),
        (f"?api_key={api_key}&username=", "BAD_USER"),
        (f"?api_key={api_key}&username=" + "x" * 65, "BAD_USER"),
        (f"?api_key={api_key}&username=bad%20name", "BAD_USER"),
        (f"?api_key={api_key}&username=alice&ct=video", "INVALID_MESSAGE"),
    ]
    for query, error_code in cases:
        code, reason, frames = await closed_with(base + query)
        assert code == 1008, query
        assert len(frames) == 1 and frames[0]["t"] == "error", query
        assert frames[0]["code"] == error_code, query
        assert frames[0]["data"] == reason and reason, query


async def test_revoked_key_is_refused(echo_server: ServerProcess):
    key = echo_server.cli("apikey", "create", "--name", "short-lived")
    key_id = next(
        line.split("\t")[0]
        for line in echo_server.cli("apikey", "list").splitlines()
        if "\tshort-lived\t" in line
    )
    url = f"{echo_server.ws}/api/v1/live/ws?username=erin&api_key={key}"
    other = echo_server.cli("apikey", "create", "--name", "stays")
    still = f"{echo_server.ws}/api/v1/live/ws?username=erin&api_key={other}"
    async with open_socket(url) as ws, open_socket(still) as kept:
        await text_turn(ws, "before revoking")
        # A turn is running when the key is revoked: the socket is ended within seconds all
        # the same, told why, and the turn is kept as far as it was heard.
        await send(ws, {"t": "text_input", "text": "a long answer please " * 40})
        echo_server.cli("apikey", "revoke", key_id)
        frames = []
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    frames.append(await recv(ws))
        assert ws.close_code == 1008 and ws.close_reason == "API key revoked"
        assert frames[-1]["t"] == "error" and frames[-1]["code"] == "UNAUTHORIZED"
        # Sockets of other keys go on.
        assert "still" in deltas(await text_turn(kept, "still here"))
    code, _, frames = await closed_with(url)
    assert code == 1008 and frames[0]["code"] == "UNAUTHORIZED"
    assert "revoked" in echo_server.cli("apikey", "list")


async def test_credentials_never_reach_the_logs(echo_server: ServerProcess, api_key: str):
    token = echo_server.token("frank")
    async with open_socket(f"{echo_server.ws}/api/live_chat/ws?token={token}") as ws:
        await text_turn(ws, "log check")
    url = f"{echo_server.ws}/api/v1/live/ws?username=frank&api_key={api_key}"
    async with open_socket(url) as ws:
        await text_turn(ws, "log check")
    with urllib.request.urlopen(f"{echo_server.http}/healthz?token={token}") as r:
        assert r.status == 200
    logs = echo_server.logs()
    assert "[REDACTED]" in logs
    assert token not in logs and token.split(".")[2] not in logs
    assert api_key not in logs


def test_healthz(echo_server: ServerProcess):
    with urllib.request.urlopen(f"{echo_server.http}/healthz") as r:
        assert r.status == 200
        body = json.loads(r.read())
    assert body == {"status": "ok", "llm": "echo", "tts": "piper", "stt": None}
