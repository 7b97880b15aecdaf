"""Voice turns on recordings of real people streamed at real time (WER, end_speaking and server
VAD latencies, barge-in), the engines' own times in process and the server's memory. Turn-taking
policies are not measured here (turns.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from .harness import (
    PROMPT,
    Reader,
    bench_token,
    free_port,
    live_server,
    read_until,
    speech,
    stream_real_time,
    summary,
    tree_rss_mb,
    vad_windows,
)

RECORDINGS = {r.file: r for r in speech.RECORDINGS}
TAIL_S = 0.7  # silence streamed after the speech, before end_speaking


def recording(name: str) -> tuple[Any, float]:
    """16 kHz mono PCM of a recording, and where its speech starts (s), by the server's VAD."""
    from live_server.audio.vad import Event

    pcm, _ = speech.load(RECORDINGS[name])
    activity, windows = vad_windows(pcm)
    onset = 0.0
    for events in windows:
        if Event.SPEECH_STARTED in events:
            onset = (activity.samples - 1024) / 16000  # two windows confirm a start
            break
    return pcm, onset


async def spoken_turns(url: str, names: list[str]) -> dict[str, list[float]]:
    """Client VAD: speech, 0.7 s of silence, end_speaking; WER and the latencies after it."""
    import numpy as np

    out: dict[str, list[float]] = {"wer": [], "user_msg": [], "response": []}
    async with connect(url, max_size=None) as ws:
        await read_until(ws, "conversation")
        for k, name in enumerate(names):
            pcm, _ = recording(name)
            await ws.send(json.dumps({"t": "start_speaking", "stamp": k, "sample_rate": 16000}))
            await stream_real_time(
                ws, np.concatenate([pcm, np.zeros(int(TAIL_S * 16000), np.int16)])
            )
            t0 = time.perf_counter()
            await ws.send(json.dumps({"t": "end_speaking", "stamp": k}))
            user_msg = await read_until(ws, "user_msg")
            out["user_msg"].append(time.perf_counter() - t0)
            await read_until(ws, "response")
            out["response"].append(time.perf_counter() - t0)
            heard = user_msg["data"]["text"]
            out["wer"].append(speech.word_error_rate(RECORDINGS[name].text, heard))
            await read_until(ws, "end")
    return out


def first_turn_end(pcm: Any, silence_ms: int) -> float:
    """Where the speech of the first turn a server VAD would cut ends (s)."""
    import numpy as np

    audio = np.concatenate([pcm, np.zeros(16 * (silence_ms + 100), np.int16)])
    activity, windows = vad_windows(audio)
    for _ in windows:
        if activity.speech_seen and not activity.speaking and activity.silence_ms >= silence_ms:
            return activity.last_speech_end / 16000
    raise ValueError("no speech in the recording")


async def server_detected_turns(url: str, names: list[str], silence_ms: int) -> list[float]:
    """`vad=server`: audio only, no start/end frames; end of speech -> the turn's user_msg."""
    import numpy as np

    out = []
    async with connect(url + "&vad=server", max_size=None) as ws:
        reader = Reader(ws)
        await reader.until(lambda: reader.times("conversation"))
        for name in names:
            pcm, _ = recording(name)
            seen = len(reader.times("user_msg"))
            audio = np.concatenate([pcm, np.zeros(3 * 16000, np.int16)])
            start = await stream_real_time(ws, audio)
            await reader.until(
                lambda: len(reader.times("end")) == len(reader.times("speech_stopped"))
            )
            user_msg = reader.times("user_msg")[seen]
            out.append(user_msg - (start + first_turn_end(pcm, silence_ms)))
        reader.stop()
    return out


async def barge_ins(url: str, names: list[str]) -> list[float]:
    """`vad=server`: a reply is playing; start of the user's speech -> stop_play."""
    import numpy as np

    out = []
    async with connect(url + "&vad=server", max_size=None) as ws:
        reader = Reader(ws)
        for name in names:
            pcm, onset = recording(name)
            stops = len(reader.times("stop_play"))
            responses = len(reader.times("response"))
            await ws.send(json.dumps({"t": "text_input", "text": PROMPT}))
            await reader.until(lambda n=responses: len(reader.times("response")) > n)
            audio = np.concatenate([pcm, np.zeros(3 * 16000, np.int16)])
            sender = asyncio.create_task(stream_real_time(ws, audio))
            await reader.until(lambda n=stops: len(reader.times("stop_play")) > n)
            start = await sender
            out.append(reader.times("stop_play")[stops] - (start + onset))
            # Every turn the speech made has ended before the next round.
            await reader.until(lambda: len(reader.times("end")) == len(reader.times("user_msg")))
        reader.stop()
    return out


async def user_msg_before_the_request(data_dir: str, token: str, n: int) -> list[float]:
    """text_input -> user_msg with an OpenAI-compatible model (the tests' local stub), whose
    SDK takes milliseconds to build each request: user_msg must not wait for that."""
    from tests.stubs import StubOpenAI, ThreadedServer

    stub = StubOpenAI(port=free_port())
    out = []
    with ThreadedServer(stub.app(), stub.port):
        server = live_server(
            {
                "LIVE_LLM": "openai",
                "LIVE_LLM_BASE_URL": stub.base_url,
                "LIVE_LLM_API_KEY": "sk-bench",
                "LIVE_STT": "none",
                "LIVE_TTS": "none",
            },
            data_dir,
        )
        try:
            await server.wait_ready()
            url = f"ws://127.0.0.1:{server.port}/api/live_chat/ws?token={token}"
            async with connect(url, max_size=None) as ws:
                await read_until(ws, "conversation")
                for i in range(n + 5):
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"t": "text_input", "text": PROMPT}))
                    await read_until(ws, "user_msg")
                    if i >= 5:
                        out.append(time.perf_counter() - t0)
                    await read_until(ws, "end")
        finally:
            server.stop()
    return out


async def engine_times(n: int) -> dict[str, Any]:
    """The embedded recogniser's and voice's own times, in process (off the server)."""
    from live_server.engines.stt.whisper import WhisperSTT
    from live_server.engines.tts.piper import PiperTTS, load_voice

    stt = WhisperSTT(model_dir=None, language="en", workers=1)
    await stt.warm_up()
    decode: dict[str, list[float]] = {}
    for name in RECORDINGS:
        pcm, _ = recording(name)
        for _ in range(n):
            recognition = stt.start()
            recognition.feed(pcm)
            t0 = time.perf_counter()
            await recognition.finish()
            decode.setdefault(name, []).append(time.perf_counter() - t0)
    await stt.aclose()
    tts = PiperTTS(load_voice(None))
    speak: dict[str, list[float]] = {}
    for text in (
        "Sure, here it is.",
        "This is a sentence of fifteen words that the voice reads out loud to us.",
    ):
        for _ in range(n):
            t0 = time.perf_counter()
            await tts.synthesize(text)
            speak.setdefault(text, []).append(time.perf_counter() - t0)
    await tts.aclose()
    return {
        "whisper_decode": {k: summary(v) for k, v in decode.items()},
        "piper_synthesize": {k: summary(v) for k, v in speak.items()},
    }


async def voice_bench(args: argparse.Namespace, results: dict[str, Any] | None = None) -> int:
    """Recognition and voice turns on recordings of real people, and the engines' own costs."""
    own = results is None
    results = {} if results is None else results
    data_dir = tempfile.mkdtemp(prefix="live-bench-voice-")
    silence_ms = 700
    # The embedded defaults: Whisper tiny.en in worker processes, Piper, Silero VAD.
    # Turns end after `silence_ms` of silence alone: this measures the pipeline after the end;
    # the turn-taking policy has its own measure (`--only turns`).
    voice = live_server(
        {
            "LIVE_ECHO_DELAY_MS": "0",
            "LIVE_VAD_SILENCE_MS": str(silence_ms),
            "LIVE_TURN_POLICY": "silence",
        },
        data_dir,
    )
    talky = live_server({"LIVE_ECHO_DELAY_MS": "60"}, data_dir)  # still talking when cut off
    try:
        await voice.wait_ready()
        await talky.wait_ready()
        rss = tree_rss_mb(voice.proc.pid)
        token = bench_token(data_dir)
        names = [name for name in RECORDINGS for _ in range(max(1, args.utterances))]
        url = f"ws://127.0.0.1:{voice.port}/api/live_chat/ws?token={token}"
        turns = await spoken_turns(url, names)
        detected = await server_detected_turns(url, names, silence_ms)
        talky_url = f"ws://127.0.0.1:{talky.port}/api/live_chat/ws?token={token}"
        barge = await barge_ins(talky_url, names)
        rss = max(rss, tree_rss_mb(voice.proc.pid))
    finally:
        voice.stop()
        talky.stop()
    user_msg_sdk = await user_msg_before_the_request(data_dir, token, 50)
    engines = await engine_times(max(3, args.utterances))
    wer = statistics.mean(turns["wer"])
    voice_results = {
        "word_error_rate": wer,
        "end_speaking_to_user_msg": summary(turns["user_msg"]),
        "end_speaking_to_first_response": summary(turns["response"]),
        "server_vad_end_of_speech_to_user_msg": summary(detected),
        "barge_in_speech_start_to_stop_play": summary(barge),
        "text_to_user_msg_openai_sdk": summary(user_msg_sdk),
        "server_rss_mb_all_engines": rss,
        **engines,
    }
    results["voice"] = voice_results
    print(f"\nvoice, on {len(names)} utterances of real speech ({', '.join(RECORDINGS)}):")
    print(f"  word error rate: {100 * wer:.1f} %")
    for name in (
        "end_speaking_to_user_msg",
        "end_speaking_to_first_response",
        "server_vad_end_of_speech_to_user_msg",
        "barge_in_speech_start_to_stop_play",
        "text_to_user_msg_openai_sdk",
    ):
        s = voice_results[name]
        print(f"  {name:40} p50 {1000 * s['p50']:8.1f} ms   p99 {1000 * s['p99']:8.1f} ms")
    for name, s in engines["whisper_decode"].items():
        print(f"  whisper decode of {name:28} p50 {1000 * s['p50']:8.1f} ms")
    for text, s in engines["piper_synthesize"].items():
        print(f"  piper, {len(text.split()):2d} words{'':26} p50 {1000 * s['p50']:8.1f} ms")
    print(f"  server with all engines loaded: {rss:.0f} MB resident")
    limit = silence_ms / 1000 + 0.3
    targets = {
        "word error rate <= 10 %": (wer, 0.10),
        "end_speaking -> user_msg p50 <= 100 ms": (
            voice_results["end_speaking_to_user_msg"]["p50"],
            0.1,
        ),
        "end_speaking -> first response p50 <= 300 ms": (
            voice_results["end_speaking_to_first_response"]["p50"],
            0.3,
        ),
        f"server turn detection p50 <= {silence_ms} + 300 ms": (
            voice_results["server_vad_end_of_speech_to_user_msg"]["p50"],
            limit,
        ),
        "RSS with all embedded engines < 1024 MB": (rss, 1024.0),
    }
    failed = 0
    results.setdefault("targets", {})
    for name, (value, bound) in targets.items():
        ok = value <= bound
        failed += not ok
        results["targets"][name] = {"value": value, "limit": bound, "met": ok}
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.3f} (limit {bound:.3f})")
    if own:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"written to {args.json}")
    return failed
