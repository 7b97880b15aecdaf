"""Load: many live sockets doing text turns, one server process against two workers.

    .venv/bin/python scripts/load.py [--sockets 500,1000,2000] [--think-s 3.0] [--seconds 20]
                                     [--database sqlite|postgres] [--json load-results.json]

Each socket is one user of the API-key socket (`/api/v1/live/ws`) on a conversation of its
own: it sends a `text_input`, reads until the turn's `end`, thinks (uniformly 0.5 to 1.5 x
--think-s), and again. Three seconds is a brisk conversation (a spoken turn alone takes that
long); with it one process shows what was seen of it before there were workers: 500 sockets
held with a p99 of tens of milliseconds, 1,000 not. The model is the embedded echo at 0 ms a
token (about 30 deltas a turn), without voice (`LIVE_TTS=none`); turns are stored as always
(SQLite in the data dir, or a private PostgreSQL with --database postgres). The sockets are
driven by --clients processes of their own (one by default), each an asyncio protocol that
makes its handshake and its frames with the `websockets` library and reads the server's frames
itself: about 0.4 ms of CPU a turn with the kernel's part, against the server's 1.7 ms, and on
a 2-core machine taken from it. One process costs less a turn than two (0.4 ms against 0.6
at saturation): it finds more sockets ready at each wake-up, and the server shares the cores
with one process fewer. It needs under 0.4 of a core even at saturation.

Each configuration runs on a fresh server: 1 worker (`live-server serve`: the default, one
process, no Redis) and 2 workers (`serve --workers 2`, with a private Redis). For each and each
socket count, measured over the window after a warm-up:
  first delta     text_input -> first bot_delta_chunk, p50/p99 over the turns sent in it
  turns/s         turns ended in it, per second
  RSS per socket  the server's resident memory (all its processes) with the sockets open and
                  no turn run yet, less before they opened, per socket
and, with --saturation-sockets sockets and no think time, the turns/s each configuration
holds at saturation, in --saturation-rounds rounds that alternate the configurations.

Targets (exit 1 if missed): 2 workers at 1,000 sockets, first delta p99 <= 50 ms; 2 workers'
saturation turns/s >= 1.6 x one worker's (the median of the rounds' ratios); RSS per idle
socket < 50 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (  # this folder: the bench's server
    Proc,
    api_key,
    live_server,
    process_tree,
    tree_rss_mb,
)
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.services import PostgresServer, RedisServer  # the harness puts the repo on sys.path

PROMPT = b'{"t":"text_input","text":"What is the weather like in Paris today?"}'
DELTA = b'{"t":"bot_delta_chunk"'
END = b'{"t":"end"'
ERROR = b'{"t":"error"'
TEXT, CLOSE, PING = 1, 8, 9  # opcodes of the server's frames
CONNECTS_AT_ONCE = 64  # per client process: a burst of handshakes, not a SYN flood


# --- the client processes ------------------------------------------------------------------


class Socket(asyncio.Protocol):
    """One live socket doing turns: callbacks rather than a task each. The library makes the
    handshake and the frames we send; once open, the server's frames are read here: they are
    unmasked and whole (uvicorn never fragments a message), and the library's general parser
    was a third of the client's CPU, taken from the server on a 2-core machine."""

    def __init__(self, run: Run, url: str, key: str) -> None:
        self.run = run
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_at = 0.0
        self.first_at = 0.0
        self.in_turn = False
        self.open = False  # past the handshake: frames are parsed by `_frames`
        self.pending = b""  # the start of a frame not all received yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        request = self.ws.connect()
        request.headers["X-API-Key"] = self.key
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.open:
            self._frames(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._frame(event.data, 0)
            elif isinstance(event, Response) and not self.opened.done():
                if event.status_code == 101:
                    self.open = True
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(f"HTTP {event.status_code}"))
        self._flush()

    def _frames(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        at, end = 0, len(buf)
        while end - at >= 2:
            opcode, size, head = buf[at] & 0x0F, buf[at + 1] & 0x7F, 2
            if size == 126:
                size, head = int.from_bytes(buf[at + 2 : at + 4]), 4
            elif size == 127:
                size, head = int.from_bytes(buf[at + 2 : at + 10]), 10
            if end - at < head + size:
                break
            start, at = at + head, at + head + size
            if opcode == TEXT:
                self._frame(buf, start)
            elif opcode == PING:
                self.ws.send_pong(buf[start:at])
                self._flush()
            elif opcode == CLOSE and self.transport is not None:
                self.transport.close()  # our close frame went first, or the server ends it
        self.pending = buf[at:]

    def _frame(self, data: bytes, start: int) -> None:
        now = time.monotonic()
        if data.startswith(DELTA, start):
            if self.in_turn and not self.first_at:
                self.first_at = now
        elif data.startswith(END, start):
            if self.in_turn:
                self.in_turn = False
                self.run.turn_ended(self, now)
        elif data.startswith(ERROR, start):
            self.run.errors += 1

    def send_turn(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if time.monotonic() >= self.run.to_t:  # the window is over: no new turn
            return
        self.sent_at, self.first_at, self.in_turn = time.monotonic(), 0.0, True
        self.ws.send_text(PROMPT)
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_close(1000)
            self._flush()

    def _flush(self) -> None:
        data = self.ws.data_to_send()
        if data and self.transport is not None:
            self.transport.write(b"".join(data))
        if self.ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed in the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.run.closing:
            self.run.lost += 1


class Run:
    """A client process's sockets and what they measured."""

    def __init__(self, think_s: float) -> None:
        self.think_s = think_s
        self.loop = asyncio.get_running_loop()
        self.sockets: list[Socket] = []
        self.go_at = self.from_t = self.to_t = 0.0
        self.first: list[float] = []  # first-delta latencies of the turns sent in the window
        self.ended = 0  # turns ended in the window
        self.errors = self.lost = 0
        self.closing = False

    def think(self) -> float:
        return self.think_s * random.uniform(0.5, 1.5)

    def start(self) -> None:
        for s in self.sockets:
            delay = max(0.0, self.go_at - time.monotonic()) + random.uniform(0, self.think_s)
            self.loop.call_later(delay, s.send_turn)

    def turn_ended(self, s: Socket, now: float) -> None:
        if self.from_t <= now < self.to_t:
            self.ended += 1
        if self.from_t <= s.sent_at < self.to_t and s.first_at:
            self.first.append(s.first_at - s.sent_at)
        if now < self.to_t:
            self.loop.call_later(self.think(), s.send_turn)


async def client_main(config: dict[str, Any]) -> None:
    """Open the sockets, say so, wait for the window, run it, report, close."""
    run = Run(config["think_s"])
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    failed = 0

    async def open_one(i: int) -> None:
        nonlocal failed
        url = f"{config['url']}?username=load{config['first'] + i}"
        async with gate:
            try:
                _, s = await loop.create_connection(
                    lambda: Socket(run, url, config["key"]), "127.0.0.1", config["port"]
                )
                await asyncio.wait_for(s.opened, 30)
                run.sockets.append(s)
            except (TimeoutError, OSError):
                failed += 1

    await asyncio.gather(*(open_one(i) for i in range(config["sockets"])))
    print(json.dumps({"connected": len(run.sockets), "failed": failed}), flush=True)
    go = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    run.go_at, run.from_t, run.to_t = go["go_at"], go["from"], go["to"]
    run.start()
    await asyncio.sleep(max(0.0, run.from_t - time.monotonic()))
    cpu = time.process_time()
    await asyncio.sleep(max(0.0, run.to_t - time.monotonic()))
    cpu = time.process_time() - cpu
    # Turns sent in the window are waited for (up to 10 s) so that their latency is counted.
    deadline = time.monotonic() + 10
    while any(s.in_turn and s.sent_at < run.to_t for s in run.sockets):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    unfinished = sum(s.in_turn for s in run.sockets)
    report = {
        "first": run.first,
        "ended": run.ended,
        "errors": run.errors,
        "lost": run.lost,
        "unfinished": unfinished,
        "cpu_s": cpu,
    }
    print(json.dumps(report), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the server's RSS is read meanwhile
    run.closing = True
    for s in run.sockets:
        s.close()
    if run.sockets:
        await asyncio.wait([asyncio.ensure_future(s.closed) for s in run.sockets], timeout=10)


# --- the parent: servers, levels, figures ---------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU time used so far by a process and its children, in seconds."""
    ticks = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def sockets_per_process(pid: int) -> list[int]:
    """TCP sockets each process of the server holds (which worker took the connections)."""
    counts = []
    for p in process_tree(pid):
        fds = Path(f"/proc/{p}/fd")
        n = 0
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                n += os.readlink(fd).startswith("socket:")
        counts.append(n)
    return counts


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def level(
    server: Proc,
    key: str,
    sockets: int,
    think_s: float,
    args: argparse.Namespace,
    window_s: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Open `sockets` sockets from the client processes, then run the window (warm-up and
    measured seconds: `window_s`, else the arguments'); the figures."""
    warmup_s, seconds = window_s or (args.warmup_s, args.seconds)
    clients = min(args.clients, sockets)
    before = tree_rss_mb(server.proc.pid)
    procs = []
    for c in range(clients):
        share = sockets // clients + (c < sockets % clients)
        config = {
            "url": f"ws://127.0.0.1:{server.port}/api/v1/live/ws",
            "port": server.port,
            "key": key,
            "sockets": share,
            "first": c * (sockets // clients + 1),
            "think_s": think_s,
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--client",
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,  # a report holds every latency of the window
            )
        )

    async def line(p: asyncio.subprocess.Process) -> dict[str, Any]:
        assert p.stdout is not None
        raw = await p.stdout.readline()
        if not raw:
            raise RuntimeError(f"a client process exited with {await p.wait()}")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def tell(message: dict[str, Any]) -> None:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps(message).encode() + b"\n")
            await p.stdin.drain()

    opened = [await line(p) for p in procs]
    connected = sum(o["connected"] for o in opened)
    if not connected:
        raise RuntimeError(f"no socket could connect to the server ({opened})")
    await asyncio.sleep(1)  # let the server settle what the last handshakes allocated
    idle = tree_rss_mb(server.proc.pid)
    spread = sockets_per_process(server.proc.pid)
    now = time.monotonic()
    go_at = now + 0.2
    window = (go_at + warmup_s, go_at + warmup_s + seconds)
    await tell({"go_at": go_at, "from": window[0], "to": window[1]})
    await asyncio.sleep(window[0] - time.monotonic())
    cpu = cpu_s(server.proc.pid)
    await asyncio.sleep(window[1] - time.monotonic())
    cpu = cpu_s(server.proc.pid) - cpu
    reports = [await line(p) for p in procs]
    await tell({})
    for p in procs:
        await p.wait()
    first = [x for r in reports for x in r["first"]]
    return {
        "sockets": sockets,
        "connected": connected,
        "failed": sum(o["failed"] for o in opened),
        "sockets_per_process": spread,
        "rss_per_idle_socket_kb": 1024 * (idle - before) / max(1, connected),
        "turns": len(first),
        "turns_per_s": sum(r["ended"] for r in reports) / seconds,
        "first_delta_p50_ms": 1000 * percentile(first, 0.5),
        "first_delta_p99_ms": 1000 * percentile(first, 0.99),
        "first_delta_max_ms": 1000 * max(first, default=float("nan")),
        "server_cores": cpu / seconds,
        "client_cores": sum(r["cpu_s"] for r in reports) / seconds,
        "errors": sum(r["errors"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "unfinished": sum(r["unfinished"] for r in reports),
    }


async def run_level(
    workers: int,
    env: dict[str, str],
    args: argparse.Namespace,
    sockets: int,
    think_s: float,
    window_s: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One level on a fresh server of `workers` processes (and a fresh data dir), printed."""
    data_dir = tempfile.mkdtemp(prefix="live-load-")
    server = live_server(env, data_dir, "--workers", str(workers))
    try:
        await server.wait_ready()
        key = api_key(server, "load")
        result = await level(server, key, sockets, think_s, args, window_s)
    finally:
        server.stop()
    name = "saturation" if think_s == 0 else f"{sockets} sockets"
    print(
        f"  {workers} worker(s), {name:13} {result['turns_per_s']:8.0f} turns/s  "
        f"first delta p50 {result['first_delta_p50_ms']:7.1f} ms  "
        f"p99 {result['first_delta_p99_ms']:7.1f} ms  "
        f"RSS/socket {result['rss_per_idle_socket_kb']:5.1f} KB  "
        f"cores: server {result['server_cores']:.2f} clients {result['client_cores']:.2f}  "
        f"spread {result['sockets_per_process']}  "
        f"errors {result['errors']} lost {result['lost']} unfinished {result['unfinished']}",
        flush=True,
    )
    return result


async def saturation_rounds(
    configs: dict[int, dict[str, str]], args: argparse.Namespace
) -> dict[int, list[dict[str, Any]]]:
    """Each configuration at saturation, in alternating rounds: the machine's speed drifts by
    tens of percent over minutes (one process held 420 to 600 turns/s within a day), so each
    round's pair is measured side by side."""
    window = (args.saturation_warmup_s, args.saturation_seconds)
    out: dict[int, list[dict[str, Any]]] = {w: [] for w in configs}
    for r in range(args.saturation_rounds):
        print(f"saturation, round {r + 1} of {args.saturation_rounds}:", flush=True)
        for workers, env in configs.items():
            result = await run_level(workers, env, args, args.saturation_sockets, 0.0, window)
            out[workers].append(result)
    return out


def server_env(database_url: str | None, redis_url: str | None, args: argparse.Namespace) -> dict:
    """The server's settings: the echo model, no voice; the shared stores if any."""
    env = {
        "LIVE_LLM": "echo",
        "LIVE_ECHO_DELAY_MS": str(args.echo_delay_ms),
        "LIVE_STT": "none",
        "LIVE_TTS": "none",
    }
    if database_url:
        env["LIVE_DATABASE_URL"] = database_url
    if redis_url:
        env["LIVE_REDIS_URL"] = redis_url
    return env


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sockets", default="500,1000,2000")
    parser.add_argument("--think-s", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--saturation-sockets", type=int, default=200)
    parser.add_argument("--saturation-rounds", type=int, default=5)
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--saturation-warmup-s", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--echo-delay-ms", type=int, default=0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--json", default="load-results.json")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        await client_main(json.loads(args.client))
        return 0
    args.sockets = [int(n) for n in args.sockets.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it

    root = Path(tempfile.mkdtemp(prefix="live-load-services-"))
    services: list[Any] = []
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "client"}}
    try:
        database_url = None
        if args.database == "postgres":
            pg = PostgresServer(root)
            pg.start()
            services.append(pg)
            database_url = pg.database()
        redis = RedisServer(root)
        redis.start()
        services.append(redis)
        configs = {
            # One worker is the default server: no Redis. More need it.
            workers: server_env(database_url, redis.url if workers > 1 else None, args)
            for workers in [int(w) for w in args.workers.split(",")]
        }
        for workers, env in configs.items():
            print(f"{workers} worker(s), {args.database}{', Redis' if workers > 1 else ''}:")
            results[f"workers_{workers}"] = {
                "levels": [
                    await run_level(workers, env, args, sockets, args.think_s)
                    for sockets in args.sockets
                ]
            }
        if args.saturation_rounds > 0:
            for workers, rounds in (await saturation_rounds(configs, args)).items():
                results[f"workers_{workers}"]["saturation_rounds"] = rounds
    finally:
        for service in services:
            service.stop()

    failed = 0
    targets: dict[str, Any] = {}
    one, two = results.get("workers_1"), results.get("workers_2")
    if two is not None:
        at_1000 = [r for r in two["levels"] if r["sockets"] == 1000]
        if at_1000:
            p99 = at_1000[0]["first_delta_p99_ms"]
            targets["2 workers, 1,000 sockets: first delta p99 <= 50 ms"] = (p99, 50.0, p99 <= 50)
        if one is not None and "saturation_rounds" in two:
            ratios = [
                b["turns_per_s"] / a["turns_per_s"]
                for a, b in zip(one["saturation_rounds"], two["saturation_rounds"], strict=True)
            ]
            print("saturation, 2 workers / 1, by round: " + ", ".join(f"{r:.2f}" for r in ratios))
            ratio = statistics.median(ratios)
            targets["saturation turns/s, 2 workers / 1 >= 1.6 (median round)"] = (
                ratio,
                1.6,
                ratio >= 1.6,
            )
    idle = [
        r["rss_per_idle_socket_kb"]
        for c in (one, two)
        if c is not None
        for r in c["levels"]
        if r["sockets"] == max(args.sockets)
    ]
    if idle:
        worst = max(idle)
        targets["RSS per idle socket < 50 KB"] = (worst, 50.0, worst < 50)
    results["targets"] = {}
    for name, (value, limit, met) in targets.items():
        failed += not met
        results["targets"][name] = {"value": value, "limit": limit, "met": met}
        print(f"{'PASS' if met else 'FAIL'}  {name}: {value:.2f} (limit {limit})")
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    if "--client" in sys.argv:  # uvloop: a client's CPU a frame is half the default loop's
        import uvloop

        sys.exit(uvloop.run(main()))
    sys.exit(asyncio.run(main()))
