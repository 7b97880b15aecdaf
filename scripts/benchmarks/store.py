"""The conversation store's turns saved per second under a busy event loop, in process on a temp
SQLite file: no server and no socket here.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any


async def store_bench(results: dict[str, Any] | None = None, seconds: float = 3.0) -> int:
    """Turns the conversation store saves per second under a busy event loop: batched (as the
    server saves) against one transaction per turn (the baseline)."""
    from live_server.storage import TurnRecord
    from live_server.storage.sqlite import SQLiteStore

    savers = 40

    async def busy(stop: asyncio.Event) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            while time.perf_counter() - t < 0.002:
                pass
            await asyncio.sleep(0)

    def turn(n: int) -> TurnRecord:
        now = time.time()
        text = f"turn {n}: " + "a reply of a few sentences, as a voice turn has. " * 4
        return TurnRecord(f"question {n}", text, "text", now, now, metrics={"n": n})

    async def rate(store: SQLiteStore, concurrent: int) -> float:
        stop = asyncio.Event()
        hog = asyncio.create_task(busy(stop))
        counts = [0] * concurrent
        deadline = time.perf_counter() + seconds

        async def saver(i: int) -> None:
            while time.perf_counter() < deadline:
                await store.save_turn(f"bench-{i}", "bench", turn(counts[i]))
                counts[i] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(saver(i) for i in range(concurrent)))
        elapsed = time.perf_counter() - t0
        stop.set()
        await hog
        return sum(counts) / elapsed

    data_dir = Path(tempfile.mkdtemp(prefix="live-bench-store-"))
    batched = SQLiteStore(data_dir / "batched.sqlite3")
    await batched.open()
    single = SQLiteStore(data_dir / "single.sqlite3")
    await single.open()
    try:
        per_turn = await rate(single, 1)  # one at a time: every commit holds one turn
        together = await rate(batched, savers)
    finally:
        await batched.aclose()
        await single.aclose()
    ok = together >= 2000
    print(f"store, {savers} savers, busy loop: {together:.0f} turns/s saved")
    print(f"store, one commit per turn (baseline): {per_turn:.0f} turns/s")
    print(f"{'PASS' if ok else 'FAIL'}  store >= 2000 turns/s: {together:.0f}")
    if results is not None:
        results["store_turns_per_s"] = {"batched": together, "commit_per_turn": per_turn}
        results.setdefault("targets", {})["store >= 2000 turns/s"] = {
            "value": together,
            "limit": 2000,
            "met": ok,
        }
    return 0 if ok else 1
