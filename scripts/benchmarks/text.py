"""The default run's measures: text turns, interrupts and voice ingest on the live server against
the floors taken in the same interleaved rounds, and the embedded TTS's first chunk, with their
targets. It returns its results; writing them out is bench.py's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from websockets.asyncio.client import connect

from .floors import (
    after_audio_round_trips,
    bare_server,
    echo_round_trips,
    reference_server,
    turn_floor_round_trips,
)
from .harness import PROMPT, bench_token, live_server, read_until, summary


async def turn_latencies(url: str, n: int) -> tuple[list[float], list[float], int]:
    delta, audio, audio_chars = [], [], 0
    async with connect(url, max_size=None) as ws:
        for i in range(n + 5):
            t0 = time.perf_counter()
            await ws.send(json.dumps({"t": "text_input", "text": PROMPT}))
            t_delta = t_audio = None
            while True:
                raw = await ws.recv()
                frame = json.loads(raw)
                now = time.perf_counter()
                if frame["t"] == "bot_delta_chunk" and t_delta is None:
                    t_delta = now - t0
                elif frame["t"] == "response" and t_audio is None:
                    t_audio = now - t0
                    audio_chars = len(raw)
                elif frame["t"] == "end":
                    break
            await read_until(ws, "metrics")  # the turn's trailing metrics
            if i >= 5 and t_delta is not None and t_audio is not None:
                delta.append(t_delta)
                audio.append(t_audio)
    return delta, audio, audio_chars


async def interrupt_latencies(url: str, n: int) -> list[float]:
    out = []
    async with connect(url, max_size=None) as ws:
        for i in range(n + 5):
            await ws.send(json.dumps({"t": "text_input", "text": PROMPT}))
            await read_until(ws, "response")
            t0 = time.perf_counter()
            await ws.send(json.dumps({"t": "interrupt"}))
            await read_until(ws, "stop_play")
            if i >= 5:
                out.append(time.perf_counter() - t0)
            await read_until(ws, "end")
    return out


def ingest_speed(seconds: float = 60.0) -> float:
    """Seconds of 48 kHz audio, in 20 ms frames, taken per second of CPU."""
    import base64

    import numpy as np

    from live_server.astrbot import frames
    from live_server.audio.segment import Segment

    rate = 48000
    rng = np.random.default_rng(0)
    samples = rng.integers(-8000, 8000, int(seconds * rate), dtype=np.int16)
    step = rate // 50
    raws = [
        json.dumps({"t": "speaking_part", "data": base64.b64encode(samples[i : i + step]).decode()})
        for i in range(0, len(samples), step)
    ]
    segment = Segment("s", sample_rate=rate, target_rate=16000, max_seconds=seconds + 1)
    t0 = time.process_time()
    for raw in raws:
        frame = frames.parse_client_frame(
            raw, max_text_chars=4000, default_ct="live", force_ct=True
        )
        assert isinstance(frame, frames.SpeakingPart)
        segment.add(frame.data)
    segment.close()
    return seconds / (time.process_time() - t0)


async def tts_first_chunk_time(n: int) -> tuple[list[float], str]:
    from live_server.core.splitter import SentenceSplitter
    from live_server.engines.llm.echo import echo_reply
    from live_server.engines.tts.espeak import EspeakTTS

    splitter = SentenceSplitter()
    first = (splitter.feed(echo_reply([{"role": "user", "content": PROMPT}])) + splitter.flush())[0]
    tts = EspeakTTS(voice=None)
    await tts.synthesize(first)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await tts.synthesize(first)
        out.append(time.perf_counter() - t0)
    return out, first


async def text_bench(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """The socket and the pipeline on text turns against the floors, in interleaved rounds; the
    embedded TTS's first chunk; voice ingest. Prints each and its target: the number of targets
    missed, and the results."""
    data_dir = tempfile.mkdtemp(prefix="live-bench-")
    floor_proc, ref_proc = bare_server(), reference_server()
    star_port, ws_port = floor_proc.port, ref_proc.port
    # The text measures are of the socket and the pipeline: espeak, the cheapest voice, keeps
    # synthesis from drowning them (Piper's own times are in the voice measures).
    text_engines = {"LIVE_STT": "none", "LIVE_TTS": "espeak"}
    fast = live_server({"LIVE_ECHO_DELAY_MS": "0", **text_engines}, data_dir)
    paced = live_server({"LIVE_ECHO_DELAY_MS": "20", **text_engines}, data_dir)
    procs = [floor_proc, ref_proc, fast, paced]
    try:
        for p in procs:
            await p.wait_ready()
        token = bench_token(data_dir)

        # The machine's speed drifts during a run (other tenants, CPU frequency): every
        # measure is taken in the same rounds, interleaved, so each ratio compares like with like.
        samples: dict[str, list[float]] = {}
        rounds = max(1, args.rounds)
        turns, trips = max(1, args.turns // rounds), max(1, args.round_trips // rounds)
        fast_url = f"ws://127.0.0.1:{fast.port}/api/live_chat/ws?token={token}"
        paced_url = f"ws://127.0.0.1:{paced.port}/api/live_chat/ws?token={token}"
        audio_chars = 0
        for _ in range(rounds):
            rnd = {
                "floor": await echo_round_trips(f"ws://127.0.0.1:{star_port}/echo", trips),
                "reference": await echo_round_trips(f"ws://127.0.0.1:{ws_port}/", trips),
                "turn_floor": await turn_floor_round_trips(
                    f"ws://127.0.0.1:{star_port}/turn", trips
                ),
            }
            rnd["delta"], rnd["audio"], audio_chars = await turn_latencies(fast_url, turns)
            rnd["after_audio"] = await after_audio_round_trips(
                f"ws://127.0.0.1:{star_port}/echo", turns, audio_chars
            )
            rnd["interrupt"] = await interrupt_latencies(paced_url, turns)
            for name, values in rnd.items():
                samples.setdefault(name, []).extend(values)
        floor = summary(samples["floor"])
        reference = summary(samples["reference"])
        turn_floor = summary(samples["turn_floor"])
        after_audio = summary(samples["after_audio"])
        delta, audio, interrupt = samples["delta"], samples["audio"], samples["interrupt"]
        tts, first_chunk = await tts_first_chunk_time(args.turns)
        ingest = ingest_speed()
    finally:
        for p in procs:
            p.stop()

    results: dict[str, Any] = {
        "floor_starlette_echo": floor,
        "reference_websockets_echo": reference,
        "turn_floor_three_frames": turn_floor,
        "floor_after_audio_frame": after_audio,
        "text_to_first_delta": summary(delta),
        "text_to_first_audio": summary(audio),
        "interrupt_to_stop_play": summary(interrupt),
        "tts_first_chunk": {**summary(tts), "text": first_chunk},
    }
    f = floor["p50"]
    targets = {
        "text_to_first_delta p50 <= 1.5 x floor": (results["text_to_first_delta"]["p50"], 1.5 * f),
        "interrupt_to_stop_play p50 <= 1.5 x floor": (
            results["interrupt_to_stop_play"]["p50"],
            1.5 * f,
        ),
        "text_to_first_audio p50 <= tts + 1.5 x floor": (
            results["text_to_first_audio"]["p50"],
            results["tts_first_chunk"]["p50"] + 1.5 * f,
        ),
    }
    print(f"{'measure':30} {'p50 ms':>9} {'p99 ms':>9} {'p50/floor':>10} {'p99/floor':>10}")
    for name, s in results.items():
        print(
            f"{name:30} {1000 * s['p50']:9.3f} {1000 * s['p99']:9.3f} {s['p50'] / f:10.2f} {s['p99'] / floor['p99']:10.2f}"
        )
    results["ingest_x_real_time"] = ingest
    print(f"ingest (parse, base64, checks, 48k -> 16k): {ingest:.0f} x real time")
    failed = 0
    results["targets"] = {
        "ingest >= 200 x real time": {"value": ingest, "limit": 200, "met": ingest >= 200}
    }
    failed += ingest < 200
    print(f"{'PASS' if ingest >= 200 else 'FAIL'}  ingest >= 200 x real time: {ingest:.0f} x")
    for name, (value, limit) in targets.items():
        ok = value <= limit
        failed += not ok
        results["targets"][name] = {"value": value, "limit": limit, "met": ok}
        print(
            f"{'PASS' if ok else 'FAIL'}  {name}: {1000 * value:.3f} ms (limit {1000 * limit:.3f} ms)"
        )
    context = {
        "text_to_first_delta / turn floor": (results["text_to_first_delta"], turn_floor),
        "interrupt_to_stop_play / after-audio floor": (
            results["interrupt_to_stop_play"],
            after_audio,
        ),
    }
    results["context"] = {}
    for name, (measured, base) in context.items():
        ratio = measured["p50"] / base["p50"]
        results["context"][name] = ratio
        print(f"      {name}: {ratio:.2f} x")
    return failed, results
