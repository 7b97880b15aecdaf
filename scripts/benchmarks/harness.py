"""What the measures share: free ports, the servers under test as processes, the CLI, p50/p99,
reading a socket, streaming speech at real time and walking it through the server's VAD. It
measures nothing itself and prints nothing: each measure's module does that.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect

if TYPE_CHECKING:
    from live_server.audio.vad import Event, VoiceActivity

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))  # the recordings and their transcripts, as the tests read them
# Imported here, once the repo is on sys.path, for the measures of speech to import from here.
from tests import speech  # noqa: E402, F401

PROMPT = "Please tell me, in a few words, what the weather is like in Paris today."
CHUNK_MS = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- servers under test (each in its own process) -----------------------------------------


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        self.port = port
        self.env = env
        self.proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.ready_path = ready_path

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args} exited with {self.proc.returncode}")
            try:
                if self.ready_path.startswith("http"):
                    with urllib.request.urlopen(self.ready_path, timeout=1):
                        return
                async with connect(self.ready_path, open_timeout=1):
                    return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.proc.args} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def live_server(env_extra: dict[str, str], data_dir: str, *serve_args: str) -> Proc:
    """`live-server serve` (with `serve_args`, say `--workers 2`) on a free port, configured
    by `env_extra` alone."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVE_")}
    env.pop("OPENAI_API_KEY", None)
    # The echo model unless told otherwise: its replies cost nothing, so the server is measured.
    env.update(
        {"LIVE_DATA_DIR": data_dir, "LIVE_LOG_LEVEL": "warning", "LIVE_LLM": "echo", **env_extra}
    )
    args = [sys.executable, "-m", "live_server", "serve", "--port", str(port), *serve_args]
    return Proc(args, env, port, f"http://127.0.0.1:{port}/healthz")


def api_key(server: Proc, name: str) -> str:
    """A new API key of the server's data dir, made with the CLI."""
    return cli(server.env, "apikey", "create", "--name", name)


def bench_token(data_dir: str, username: str = "bench") -> str:
    """A dashboard JWT for the servers on `data_dir`, made with the CLI."""
    return cli({**os.environ, "LIVE_DATA_DIR": data_dir}, "token", username)


def cli(env: dict[str, str], *args: str) -> str:
    """`live-server ARGS`' output."""
    out = subprocess.run(
        [sys.executable, "-m", "live_server", *args], env=env, capture_output=True, check=True
    )
    return out.stdout.decode().strip()


# --- measurements --------------------------------------------------------------------------


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "n": len(ordered)}


async def read_until(ws: ClientConnection, t: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if frame["t"] == t:
            return frame


class Reader:
    """Reads a socket in the background, so that it never pushes back on the server (a client
    that stops reading would stall the server's pings), and keeps each frame's arrival time."""

    def __init__(self, ws: ClientConnection) -> None:
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(ws))

    async def _run(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self.frames.append((time.perf_counter(), json.loads(raw)))
            self._changed.set()

    def times(self, t: str) -> list[float]:
        return [at for at, f in self.frames if f["t"] == t]

    async def until(self, done: Any, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    def stop(self) -> None:
        self._task.cancel()


# --- recordings of real people, streamed as a microphone would ---------------------------


def part(samples: Any) -> str:
    import base64

    data = base64.b64encode(samples.astype("<i2").tobytes()).decode()
    return json.dumps({"t": "speaking_part", "data": data})


async def stream_real_time(ws: ClientConnection, pcm: Any) -> float:
    """Send `pcm` in 100 ms frames at the pace of speech; returns when the last was sent."""
    step = 16000 * CHUNK_MS // 1000
    start = time.perf_counter()
    for k, i in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, start + k * CHUNK_MS / 1000 - time.perf_counter()))
        await ws.send(part(pcm[i : i + step]))
    return start


def vad_windows(pcm: Any) -> tuple[VoiceActivity, Iterator[list[Event]]]:
    """A fresh server VAD (a Silero model of its own) and the events of each window of `pcm`
    fed to it, window by window as they are taken: the VAD's state is that after the last."""
    from live_server.audio import vad

    activity = vad.VoiceActivity(vad.ScorerPool.silero().take())
    windows = (activity.feed(pcm[i : i + vad.WINDOW]) for i in range(0, len(pcm), vad.WINDOW))
    return activity, windows


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (the recogniser's workers, `serve --workers`)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        children = Path(f"/proc/{p}/task/{p}/children")
        if children.exists():
            todo += [int(c) for c in children.read_text().split()]
    return pids


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants."""
    total = 0
    for p in process_tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024
