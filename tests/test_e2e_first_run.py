"""What a new user meets first: a taken port, the data dir's modes, a page without its npm
packages."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.client import open_live, text_turn
from tests.conftest import NO_VOICE, ServerProcess, clean_env


def test_a_taken_port_is_said_with_how_to_choose_another(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(LIVE_DATA_DIR=str(tmp_path / "data"), LIVE_TTS="none", **NO_VOICE)
        done = subprocess.run(
            [sys.executable, "-m", "live_server", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            timeout=60,
        )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port" in err and "LIVE_PORT" in err and "Traceback" not in err
    # No sign-in link was made for a server that never started.
    assert not (tmp_path / "data" / "sign-in-url").exists()


async def test_what_the_server_writes_is_readable_by_its_owner_only(
    tmp_path_factory, server_factory: Callable[..., ServerProcess]
):
    data = tmp_path_factory.mktemp("open") / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # whatever the umask: a dir others can read, as a user might have made
    server = server_factory(LIVE_DATA_DIR=str(data), LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none")
    async with open_live(server.live_url("ann")) as ws:
        await text_turn(ws, "keep this to yourself")
    server.cli("apikey", "create", "--name", "ci")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    written = sorted(p.name for p in data.iterdir())
    assert {"conversations.sqlite3", "api_keys.json", "jwt_secret", "sign-in-url"} <= set(written)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_the_page_without_its_npm_packages_answers_404(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
):
    web = tmp_path / "web"
    (web / "public").mkdir(parents=True)
    (web / "public" / "index.html").write_text("<title>Live</title>")
    server = server_factory(LIVE_WEB_DIR=str(web), LIVE_TTS="none")
    for path in ("/vendor/vad/bundle.min.js", "/vendor/ort/ort.wasm.min.js"):
        response = httpx.get(f"{server.http}{path}")
        assert response.status_code == 404, path
        assert "npm ci" in response.text
    assert httpx.get(f"{server.http}/").status_code == 200
    assert "Traceback" not in server.logs()


async def test_each_turn_leaves_one_info_line_without_its_words(
    server_factory: Callable[..., ServerProcess],
):
    quiet = server_factory(LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none")
    chatty = server_factory(LIVE_ECHO_DELAY_MS="0", LIVE_TTS="none", LIVE_LOG_LEVEL="debug")
    said = "a rather private sentence, " * 10
    for server in (quiet, chatty):
        async with open_live(server.live_url("lou")) as ws:
            await text_turn(ws, said.strip())
    for server in (quiet, chatty):
        lines = [line for line in server.logs().splitlines() if "turn 1 of lou:" in line]
        info = [line for line in lines if " INFO " in line]
        assert len(info) == 1, lines
        assert f"text, {len(said.strip())} chars in" in info[0] and "done" in info[0]
        assert "llm_first=" in info[0] and "total=" in info[0]
        assert "private" not in info[0]
    assert "private" not in quiet.logs()
    # At debug level the whole exchange is there, uncut.
    assert said.strip() in chatty.logs()
