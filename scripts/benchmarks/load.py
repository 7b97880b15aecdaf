"""Load (`--only load`, or `scripts/load.py` with every flag): many live sockets doing text
turns, one server process against two workers, at rising socket counts and at saturation. The
figures and targets are in `scripts/load.py`'s docstring. The sockets come from
`load_clients` processes; nothing here opens a socket itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Proc, api_key, live_server, process_tree, tree_rss_mb
from tests.services import PostgresServer, RedisServer

# The client processes run this script (`--client CONFIG`).
CLIENT_SCRIPT = ROOT / "scripts" / "load.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The load test's flags (`scripts/load.py`; `bench.py --only load` takes their defaults)."""
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
                str(CLIENT_SCRIPT),
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


async def load_bench(args: argparse.Namespace) -> int:
    """Every level and the saturation rounds on fresh servers; exit 1 if a target is missed."""
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
