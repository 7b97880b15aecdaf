"""Fixtures: the real server as a subprocess on a free loopback port, and local stubs."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.speech import SpeechUnavailable
from tests.stubs import DEFAULT_REPLY, StubOpenAI, ThreadedServer

if TYPE_CHECKING:
    from tests.services import PostgresServer, RedisServer


# Modules whose tests take seconds each: a browser, databases, real speech through the
# recognisers, the embedded model, fuzzing, clients that wait out a timeout. `-m "not slow"`
# leaves them out.
SLOW_MODULES = {
    "test_browser", "test_e2e_durability", "test_e2e_persistence", "test_e2e_postgres",
    "test_e2e_redis", "test_e2e_slow_client", "test_e2e_turn_detection", "test_e2e_voice",
    "test_fuzz", "test_local_llm", "test_users", "test_e2e_turn_taking",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that has no recordings of real speech to hand says so in one line, not with a
    traceback (`tests/speech.py` says where they come from)."""
    outcome = yield
    if call.excinfo is not None and call.excinfo.errisinstance(SpeechUnavailable):
        outcome.get_result().longrepr = f"SpeechUnavailable: {call.excinfo.value}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def refused_start(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `live-server serve` with `env`, which must stop it at start-up; what it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "live_server", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode != 0, done.stderr[-2000:]
    return done


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any live-server or OpenAI settings, but the
    echo model (`ECHO`), and with `overrides`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIVE_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env.update({**ECHO, **overrides})
    return env


@dataclass
class ServerProcess:
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def logged(self, text: str, times: int = 1, timeout: float = 30) -> str:
        """The log, once `text` is in it `times` times (the server logs asynchronously)."""
        deadline = time.monotonic() + timeout
        while (logs := self.logs()).count(text) < times:
            assert time.monotonic() < deadline, f"{text!r} not logged {times} times:\n{logs}"
            await asyncio.sleep(0.05)
        return logs

    def sign_in_url(self) -> str:
        """The tokenised page address `serve` made at start: written to a private file in the
        data dir, since a test's server logs to a file rather than a terminal."""
        return (self.data_dir / "sign-in-url").read_text().strip()

    def cli(self, *args: str) -> str:
        """Run `live-server ARGS` against this server's data dir; its stdout."""
        out = subprocess.run(
            [sys.executable, "-m", "live_server", *args],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return out.stdout.decode().strip()

    def token(self, username: str = "alice") -> str:
        """A dashboard JWT, made once per user by the real CLI (each call is a process)."""
        if username not in self._tokens:
            self._tokens[username] = self.cli("token", username)
        return self._tokens[username]

    def live_url(self, username: str = "alice") -> str:
        return f"{self.ws}/api/live_chat/ws?token={self.token(username)}"

    def unified_url(self, username: str = "alice") -> str:
        return f"{self.ws}/api/unified_chat/ws?token={self.token(username)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Servers of tests that send no voice run without a recogniser: each Whisper worker holds about
# 200 MB, and a session's servers all live until it ends. Voice tests ask for one.
NO_VOICE = {"LIVE_STT": "none"}
# ...and answer with the echo model, whose replies a test can predict; the embedded model (the
# default) is tested on its own.
ECHO = {"LIVE_LLM": "echo"}


def start_server(tmp: Path, *args: str, **settings: str) -> ServerProcess:
    """`live-server serve [ARGS]` with these settings, once it answers `/healthz`."""
    port = free_port()
    data_dir = Path(settings.pop("LIVE_DATA_DIR", tmp / "data"))
    env = clean_env(LIVE_DATA_DIR=str(data_dir), **{**NO_VOICE, **settings})
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "live_server",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(port, data_dir, log_path, env, proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.http}/healthz", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server did not become healthy:\n{server.logs()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(**settings: str) -> ServerProcess:
        server = start_server(tmp_path_factory.mktemp("server"), **settings)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def echo_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """Embedded engines only: echo LLM (20 ms a token) and espeak."""
    return server_factory(LIVE_ECHO_DELAY_MS="20")


@pytest.fixture(scope="session")
def stub() -> Iterator[StubOpenAI]:
    stub = StubOpenAI(port=free_port())
    with ThreadedServer(stub.app(), stub.port):
        yield stub


@pytest.fixture
def llm_stub(stub: StubOpenAI) -> StubOpenAI:
    """The shared stub, reset for one test."""
    stub.delay = 0.0
    stub.reply = lambda messages: DEFAULT_REPLY
    stub.deltas = None
    stub.chat_requests.clear()
    stub.speech_requests.clear()
    stub.transcription_requests.clear()
    stub.transcript = "hello from the stub"
    stub.auth_headers.clear()
    stub.stream_closed.clear()
    stub.refuses_stream_options = False
    stub.usages.clear()
    return stub


def stub_llm(stub: StubOpenAI) -> dict[str, str]:
    """The settings that make the stub the server's LLM."""
    return {
        "LIVE_LLM": "openai",
        "LIVE_LLM_BASE_URL": stub.base_url,
        "LIVE_LLM_API_KEY": "sk-test-llm-key",
        "LIVE_LLM_MODEL": "stub-model",
        "LIVE_SYSTEM_PROMPT": "You are a test.",
    }


@pytest.fixture(scope="session")
def stub_server(server_factory: Callable[..., ServerProcess], stub: StubOpenAI) -> ServerProcess:
    """The live server with the OpenAI-compatible stub as its LLM and espeak as TTS."""
    return server_factory(**stub_llm(stub))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL for the session; each test takes a database of its own."""
    from tests.services import PostgresServer

    server = PostgresServer(Path(tempfile.mkdtemp(prefix="live-pg-")))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis for one test."""
    from tests.services import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
