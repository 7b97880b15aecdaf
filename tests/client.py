"""A small Live API client for tests, on the `websockets` library (and `httpx` for HTTP)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import soundfile
from websockets.asyncio.client import ClientConnection, connect

if TYPE_CHECKING:
    from tests.conftest import ServerProcess

Frame = dict[str, Any]
TIMEOUT = 30.0


def open_socket(url: str, **kwargs: Any) -> Any:
    return connect(url, max_size=None, open_timeout=10, **kwargs)


@asynccontextmanager
async def open_live(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A live socket, past its opening `conversation` frame (kept as `ws.conversation`)."""
    async with open_socket(url, **kwargs) as ws:
        hello = await recv(ws)
        assert hello["t"] == "conversation", hello
        assert isinstance(hello["data"]["id"], str) and hello["data"]["id"]
        ws.conversation = hello["data"]
        yield ws


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> Frame:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "the server sends text frames only"
    frame: Frame = json.loads(raw)
    return frame


async def send(ws: ClientConnection, frame: Frame | str) -> None:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))


async def until(ws: ClientConnection, t: str, timeout: float = TIMEOUT) -> list[Frame]:
    """Frames up to and including the first of type `t`."""
    frames: list[Frame] = []
    async with asyncio.timeout(timeout):
        while True:
            frames.append(await recv(ws))
            if frames[-1]["t"] == t:
                return frames


async def text_turn(ws: ClientConnection, text: str) -> list[Frame]:
    """Send `text_input`; the turn's frames through `end` and the metrics that follow it."""
    await send(ws, {"t": "text_input", "text": text})
    frames = await until(ws, "end")
    frames.append(await recv(ws))
    assert frames[-1]["t"] == "metrics" and "wav_to_tts_total_time" in frames[-1]["data"]
    return frames


async def chat_until_end(ws: Any, message_id: str | None = None) -> list[Frame]:
    """Chat frames up to the `end` of `message_id` (of any reply when None)."""
    frames: list[Frame] = []
    async with asyncio.timeout(30):
        while True:
            frame = await recv(ws)
            if frame.get("ct") != "chat":
                continue  # the unified socket's opening `conversation` frame
            frames.append(frame)
            if frame.get("type") == "end" and message_id in (None, frame.get("message_id")):
                return frames


def types(frames: list[Frame]) -> list[str]:
    return [f["t"] for f in frames]


def of(frames: list[Frame], t: str) -> list[Frame]:
    return [f for f in frames if f["t"] == t]


def deltas(frames: list[Frame]) -> str:
    return "".join(f["data"]["text"] for f in of(frames, "bot_delta_chunk"))


def decode_wav(b64: str) -> tuple[np.ndarray[Any, Any], int]:
    data = base64.b64decode(b64, validate=True)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    return samples, rate


def rms(samples: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def pcm_b64(samples: np.ndarray[Any, Any]) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode("ascii")


def voice_frames(
    samples: np.ndarray[Any, Any], rate: int, stamp: str, chunk_ms: int | None = 100
) -> list[Frame]:
    """start_speaking, the audio as `chunk_ms` parts (one part when None), end_speaking."""
    step = len(samples) if chunk_ms is None else max(1, rate * chunk_ms // 1000)
    parts = [
        {"t": "speaking_part", "data": pcm_b64(samples[i : i + step])}
        for i in range(0, len(samples), step)
    ]
    return [
        {"t": "start_speaking", "stamp": stamp, "sample_rate": rate},
        *parts,
        {"t": "end_speaking", "stamp": stamp},
    ]


async def voice_turn(
    ws: ClientConnection,
    samples: np.ndarray[Any, Any],
    rate: int,
    *,
    stamp: str = "seg-1",
    chunk_ms: int | None = 100,
) -> list[Frame]:
    """Speak; the turn's frames through `end` (and the metrics after it, when there are any)."""
    for frame in voice_frames(samples, rate, stamp, chunk_ms):
        await send(ws, frame)
    frames = await until(ws, "end")
    if "user_msg" in types(frames):
        frames.append(await recv(ws))
        assert frames[-1]["t"] == "metrics" and "wav_to_tts_total_time" in frames[-1]["data"]
    return frames


async def sse_events(response: httpx.Response) -> list[Any]:
    """Parse a Server-Sent Events body: one JSON object per `data:` event (OpenAI's closing
    `[DONE]` stays that string)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events, data = [], []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            text = "\n".join(data)
            events.append(text if text == "[DONE]" else json.loads(text))
            data = []
    return events


async def post_chat(server: ServerProcess, body: dict[str, Any], **headers: str) -> Any:
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", f"{server.http}/api/v1/chat", json=body, headers=headers) as r,
    ):
        if r.status_code != 200:
            await r.aread()
            return r.status_code, r.json()
        return r.status_code, await sse_events(r)
