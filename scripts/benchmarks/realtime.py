"""The Realtime codec against the AstrBot API-key socket of the same server, step for step in
interleaved rounds, with each protocol's floor from the bare server. Only the two protocols'
own frames differ between the measures: keep their steps the same.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from .floors import bare_server, turn_floor_round_trips
from .harness import PROMPT, api_key, live_server, read_until, summary


async def astrbot_turns(url: str, n: int) -> dict[str, list[float]]:
    """On the API-key socket, as `realtime_turns` does over /v1/realtime, turn for turn: on one
    socket, text -> first delta, then an interrupt; on another, text -> first audio, then
    interrupt -> end."""
    out: dict[str, list[float]] = {"delta": [], "audio": [], "stop": []}
    # Encoded once, as the Realtime events are: no encoding inside the timed steps.
    ask = json.dumps({"t": "text_input", "text": PROMPT})
    interrupt = json.dumps({"t": "interrupt"})
    async with connect(url, max_size=None) as text_ws, connect(url, max_size=None) as audio_ws:
        for i in range(n + 5):
            t0 = time.perf_counter()
            await text_ws.send(ask)
            await read_until(text_ws, "bot_delta_chunk")
            t_delta = time.perf_counter() - t0
            await text_ws.send(interrupt)
            await read_until(text_ws, "end")
            t0 = time.perf_counter()
            await audio_ws.send(ask)
            await read_until(audio_ws, "response")
            t_audio = time.perf_counter() - t0
            t1 = time.perf_counter()
            await audio_ws.send(interrupt)
            await read_until(audio_ws, "end")
            if i >= 5:
                out["delta"].append(t_delta)
                out["audio"].append(t_audio)
                out["stop"].append(time.perf_counter() - t1)
    return out


REALTIME_ASK = [
    json.dumps(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": PROMPT}],
            },
        }
    ),
    json.dumps({"type": "response.create"}),
]


async def realtime_open(url: str, key: str, modality: str) -> ClientConnection:
    ws = await connect(url, max_size=None, additional_headers={"Authorization": f"Bearer {key}"})
    await ws.send(
        json.dumps({"type": "session.update", "session": {"output_modalities": [modality]}})
    )
    await realtime_until(ws, "session.updated")
    return ws


async def realtime_until(ws: ClientConnection, kind: str) -> None:
    while json.loads(await ws.recv())["type"] != kind:
        pass


async def realtime_first_delta(ws: ClientConnection) -> float:
    """A user message and a response to it, as the SDK sends them -> the first
    `response.output_text.delta`."""
    t0 = time.perf_counter()
    for event in REALTIME_ASK:
        await ws.send(event)
    await realtime_until(ws, "response.output_text.delta")
    return time.perf_counter() - t0


async def realtime_turns(url: str, key: str, n: int) -> dict[str, list[float]]:
    """The same three measures over /v1/realtime: in a text session, the first
    `response.output_text.delta`, then `response.cancel`; in an audio session, the first
    `response.output_audio.delta`, then `response.cancel` -> `response.done`."""
    out: dict[str, list[float]] = {"delta": [], "audio": [], "stop": []}
    cancel = json.dumps({"type": "response.cancel"})
    text_ws = await realtime_open(url, key, "text")
    audio_ws = await realtime_open(url, key, "audio")
    async with text_ws, audio_ws:
        for i in range(n + 5):
            t_delta = await realtime_first_delta(text_ws)
            await text_ws.send(cancel)
            await realtime_until(text_ws, "response.done")
            t0 = time.perf_counter()
            for event in REALTIME_ASK:
                await audio_ws.send(event)
            await realtime_until(audio_ws, "response.output_audio.delta")
            t_audio = time.perf_counter() - t0
            t1 = time.perf_counter()
            await audio_ws.send(cancel)
            await realtime_until(audio_ws, "response.done")
            if i >= 5:
                out["delta"].append(t_delta)
                out["audio"].append(t_audio)
                out["stop"].append(time.perf_counter() - t1)
    return out


async def realtime_floor_deltas(url: str, n: int) -> list[float]:
    """`realtime_first_delta` against the bare server's canned Realtime events."""
    out = []
    async with await realtime_open(url, "", "text") as ws:
        for i in range(n + 20):
            elapsed = await realtime_first_delta(ws)
            await realtime_until(ws, "response.done")  # sent with the delta: no cancel needed
            if i >= 20:
                out.append(elapsed)
    return out


async def realtime_bench(args: argparse.Namespace, results: dict[str, Any] | None = None) -> int:
    """Over /v1/realtime and the AstrBot API-key socket of the same server, in interleaved
    rounds and with the same steps (what comes before a turn moves its first delta by up to a
    third: a turn after a whole reply starts later than one after a stop; each stop lands
    before its reply is done): the Realtime codec may add at most 10 % to each measure. The
    bare server's floors of text -> first delta for each protocol, taken in the same rounds,
    show how much of the difference is the protocols' own frames (reported, not a target)."""
    data_dir = tempfile.mkdtemp(prefix="live-bench-rt-")
    server = live_server(
        {"LIVE_ECHO_DELAY_MS": "0", "LIVE_STT": "none", "LIVE_TTS": "espeak"}, data_dir
    )
    bare = bare_server()
    bare_port = bare.port
    samples: dict[str, list[float]] = {}
    try:
        await server.wait_ready()
        await bare.wait_ready()
        key = api_key(server, "bench")
        base = f"ws://127.0.0.1:{server.port}"
        astrbot_url = f"{base}/api/v1/live/ws?username=bench&api_key={key}"
        realtime_url = f"{base}/v1/realtime?model=bench&username=bench"
        rounds = max(1, args.rounds)
        turns = max(1, args.turns // rounds // 3)
        for _ in range(rounds):
            for name, values in (await astrbot_turns(astrbot_url, turns)).items():
                samples.setdefault(f"astrbot_{name}", []).extend(values)
            for name, values in (await realtime_turns(realtime_url, key, turns)).items():
                samples.setdefault(f"realtime_{name}", []).extend(values)
            samples.setdefault("astrbot_floor", []).extend(
                await turn_floor_round_trips(f"ws://127.0.0.1:{bare_port}/turn", turns)
            )
            samples.setdefault("realtime_floor", []).extend(
                await realtime_floor_deltas(f"ws://127.0.0.1:{bare_port}/realtime", turns)
            )
    finally:
        server.stop()
        bare.stop()
    failed = 0
    out: dict[str, Any] = {}
    labels = {
        "delta": "text -> first text delta",
        "audio": "text -> first audio",
        "stop": "stop -> end",
    }
    for name, label in labels.items():
        astrbot, realtime = (
            summary(samples[f"astrbot_{name}"]),
            summary(samples[f"realtime_{name}"]),
        )
        ok = realtime["p50"] <= 1.1 * astrbot["p50"]
        failed += not ok
        out[name] = {
            "astrbot": astrbot,
            "realtime": realtime,
            "ratio": realtime["p50"] / astrbot["p50"],
        }
        print(
            f"{'PASS' if ok else 'FAIL'}  realtime {label}: {1000 * realtime['p50']:.3f} ms p50, "
            f"astrbot {1000 * astrbot['p50']:.3f} ms ({realtime['p50'] / astrbot['p50']:.2f} x, "
            "limit 1.10 x)"
        )
    astrbot, realtime = summary(samples["astrbot_floor"]), summary(samples["realtime_floor"])
    out["floor"] = {
        "astrbot": astrbot,
        "realtime": realtime,
        "ratio": realtime["p50"] / astrbot["p50"],
    }
    print(
        f"      floor of text -> first text delta, a bare server sending only each protocol's "
        f"frames: realtime {1000 * realtime['p50']:.3f} ms p50, astrbot "
        f"{1000 * astrbot['p50']:.3f} ms ({realtime['p50'] / astrbot['p50']:.2f} x)"
    )
    if results is not None:
        results["realtime"] = out
    else:
        Path(args.json).write_text(json.dumps({"realtime": out}, indent=2))
    return 1 if failed else 0
