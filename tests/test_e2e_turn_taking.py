"""Turn-taking on real speech, end to end: recordings of real people streamed at real time (as a
microphone would send them) to the real server, which decides where turns end from the words
(Whisper's guesses at each pause, judged by the embedded model) and from the silence.

The audio is paced by the clock because what is under test is how the server judges a pause
while it lasts: a client that sent the whole recording at once would give it no pauses to
judge. The waits for the server's answers are bounded, never fixed.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI

from tests.client import of, open_live, pcm_b64, send, types, until
from tests.conftest import ServerProcess
from tests.speech import JFK, SHORT, load, silence, word_error_rate
from tests.test_e2e_persistence import wait_stored

CHUNK_MS = 100


@pytest.fixture(scope="module")
def server(server_factory) -> ServerProcess:
    # The default turn policy: the embedded model judges the words at each pause.
    return server_factory(LIVE_STT="whisper", LIVE_ECHO_DELAY_MS="5")


async def at_real_time(audio: np.ndarray, rate: int, send_chunk: Any) -> None:
    """Send `audio` in 100 ms chunks, each when a microphone would have it."""
    loop = asyncio.get_running_loop()
    step, start = rate * CHUNK_MS // 1000, loop.time()
    for n, i in enumerate(range(0, len(audio), step)):
        await send_chunk(audio[i : i + step])
        ahead = start + (n + 1) * CHUNK_MS / 1000 - loop.time()
        if ahead > 0:
            await asyncio.sleep(ahead)


async def speak(ws: Any, audio: np.ndarray) -> None:
    async def chunk(samples: np.ndarray) -> None:
        await send(ws, {"t": "speaking_part", "data": pcm_b64(samples)})

    await at_real_time(audio, 16000, chunk)


def kennedy() -> np.ndarray:
    samples, _ = load(JFK)
    return np.concatenate([silence(0.5), samples, silence(1.5)])


async def test_kennedys_sentence_with_its_long_pauses_is_one_turn(server):
    async with open_live(f"{server.live_url()}&vad=server") as ws:
        conversation_id = ws.conversation["id"]
        await speak(ws, kennedy())
        frames = await until(ws, "end")
        await send(ws, {"t": "text_input", "text": "thanks"})
        after = await until(ws, "end")
    kinds = types(frames)
    assert kinds.count("user_msg") == 1 and kinds.count("speech_stopped") == 1, kinds
    (heard,) = of(frames, "user_msg")
    assert word_error_rate(JFK.text, heard["data"]["text"]) <= 0.15, heard
    # The echo model repeats what it was told: every word of its reply is about the whole
    # sentence, none about a part of it guessed at a pause.
    reply = "".join(f["data"]["text"] for f in of(frames, "bot_delta_chunk"))
    assert "for your country" in reply.lower()
    # His whole sentence reads as finished; he paused a second inside it, so its end is given
    # as long (and no more than the most, LIVE_TURN_PATIENCE_MS).
    opening = of(frames, "metrics")[0]["data"]
    assert opening["end_of_turn_p"] >= 0.25, opening
    assert 1000 <= opening["end_of_turn_patience_ms"] <= 1500, opening
    assert opening["end_of_turn_ms"] < 1800, opening
    # Only the one exchange is kept (and the typed one after it): a reply dropped at a pause
    # left nothing in the store.
    stored = await wait_stored(server, conversation_id, 4)
    assert [m["content"] for m in stored["messages"] if m["role"] == "user"] == [
        heard["data"]["text"],
        "thanks",
    ]
    assert of(after, "user_msg")[0]["data"]["text"] == "thanks"


async def test_a_finished_sentence_is_answered_soon_and_an_unfinished_one_waits(server):
    short, _ = load(SHORT)
    cut_off = load(JFK)[0][: int(2.3 * 16000)]  # "And so my fellow Americans", and his pause
    # A socket each: on one, the second would talk over the first's reply as it plays.
    async with open_live(f"{server.live_url()}&vad=server") as ws:
        await speak(ws, np.concatenate([silence(0.3), short, silence(0.8)]))
        answered = await until(ws, "end")
    async with open_live(f"{server.live_url()}&vad=server") as ws:
        await speak(ws, np.concatenate([silence(0.3), cut_off, silence(3.5)]))
        waited = await until(ws, "end")
    finished = of(answered, "metrics")[0]["data"]
    assert finished["end_of_turn_ms"] <= 700, finished
    unfinished = of(waited, "metrics")[0]["data"]
    assert unfinished["end_of_turn_ms"] >= 1200, unfinished
    assert "americans" in of(waited, "user_msg")[0]["data"]["text"].lower()


@asynccontextmanager
async def semantic_vad(server: ServerProcess, eagerness: str, **session: Any) -> AsyncIterator[Any]:
    """A Realtime connection through the official SDK, its session updated to `semantic_vad` at
    `eagerness` (and `session`'s other fields)."""
    key = server.cli("apikey", "create", "--name", f"semantic-{eagerness}")
    client = AsyncOpenAI(api_key=key, base_url=f"{server.http}/v1")
    async with client.realtime.connect(model="live-test") as conn:
        assert (await conn.recv()).type == "session.created"
        detection = {"type": "semantic_vad", "eagerness": eagerness}
        await conn.session.update(
            session={
                "type": "realtime",
                **session,
                "audio": {"input": {"turn_detection": detection}},
            }  # type: ignore[typeddict-item]
        )
        yield conn


async def realtime_until(conn: Any, kind: str, events: list[Any], timeout: float = 120) -> Any:
    """Events into `events` up to the first of `kind`, which is returned."""
    async with asyncio.timeout(timeout):
        while True:
            events.append(await conn.recv())
            if events[-1].type == kind:
                return events[-1]


async def test_semantic_vad_on_the_realtime_api_with_the_official_sdk(server):
    pcm, rate = load(JFK, rate=24000)
    audio = np.concatenate([silence(0.5, rate), pcm, silence(1.5, rate)])
    events: list[Any] = []
    async with semantic_vad(server, "low", output_modalities=["text"]) as conn:
        updated = await realtime_until(conn, "session.updated", events)
        turn_detection = updated.session.audio.input.turn_detection
        assert turn_detection.type == "semantic_vad" and turn_detection.eagerness == "low"

        async def chunk(samples: np.ndarray) -> None:
            encoded = base64.b64encode(samples.astype("<i2").tobytes()).decode()
            await conn.input_audio_buffer.append(audio=encoded)

        await at_real_time(audio, rate, chunk)
        done = await realtime_until(conn, "response.done", events)
    kinds = [e.type for e in events]
    assert kinds.count("input_audio_buffer.committed") == 1, kinds
    assert kinds.count("response.created") == 1
    (heard,) = [e for e in events if e.type.endswith("input_audio_transcription.completed")]
    assert word_error_rate(JFK.text, heard.transcript) <= 0.15, heard.transcript
    assert done.response.status == "completed"


async def test_semantic_vad_settings_are_checked(server):
    async with semantic_vad(server, "eventually") as conn:
        error = await realtime_until(conn, "error", [], timeout=30)
    assert "eagerness" in error.error.message
