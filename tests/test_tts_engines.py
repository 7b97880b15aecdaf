"""The TTS engines: espeak for real, OpenAI-compatible against the stub, edge with an injected
stream (the real service needs internet)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import numpy as np
import pytest
import soundfile

from live_server.app import create_app
from live_server.audio import Audio, decode
from live_server.auth import issue_token, load_jwt_secret
from live_server.errors import TTSError
from live_server.providers.llm.echo import EchoLLM
from live_server.providers.tts.edge import EdgeTTS
from live_server.providers.tts.espeak import EspeakTTS
from live_server.session import Engines
from live_server.settings import Settings
from tests.client import decode_wav, of, open_live, rms, text_turn
from tests.conftest import ServerProcess, free_port
from tests.stubs import SPEECH_RATE, StubOpenAI, ThreadedServer

# --- espeak, for real ------------------------------------------------------------------------


async def test_espeak_speaks_english_and_chinese() -> None:
    tts = EspeakTTS(voice=None)
    english = await tts.synthesize("The quick brown fox jumps over the lazy dog.")
    chinese = await tts.synthesize("今天天气很好。")
    for audio in (english, chinese):
        assert audio.sample_rate == 22050
        assert audio.duration_ms > 500
        assert rms(audio.samples) > 300
    assert tts.voice_for("今天") == "cmn" and tts.voice_for("today") == "en"
    # The WAV it hands on decodes back to the same samples.
    again = decode(english.to_wav())
    assert again.sample_rate == 22050 and np.array_equal(again.samples, english.samples)


async def test_espeak_synthesis_stops_when_cancelled() -> None:
    tts = EspeakTTS(voice=None)
    long_text = "This sentence goes on and on without any end in sight. " * 200
    task = asyncio.create_task(tts.synthesize(long_text))
    await asyncio.sleep(0)  # let it reach the worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The engine's one worker is free again straight away: the callback aborted the synthesis.
    short = await asyncio.wait_for(tts.synthesize("Still working."), timeout=5)
    assert short.duration_ms > 300


async def test_espeak_rejects_an_unknown_voice() -> None:
    with pytest.raises(TTSError, match="no voice"):
        await EspeakTTS(voice="xx-nonexistent").synthesize("hello")
    # A bad voice does not poison the shared engine.
    assert (await EspeakTTS(voice=None).synthesize("hello there")).duration_ms > 200


# --- OpenAI-compatible, against the stub -------------------------------------------------------


async def test_openai_tts_and_a_failing_sentence(server_factory: Any, llm_stub: StubOpenAI) -> None:
    server: ServerProcess = server_factory(
        LIVE_LLM="openai",
        LIVE_LLM_BASE_URL=llm_stub.base_url,
        LIVE_TTS="openai",
        LIVE_TTS_BASE_URL=llm_stub.base_url,
        LIVE_TTS_API_KEY="sk-tts",
        LIVE_TTS_VOICE="nova",
    )
    llm_stub.reply = lambda messages: (
        "The first sentence is fine. This one will TTS_FAIL sadly. The third one is fine too."
    )
    async with open_live(f"{server.ws}/api/live_chat/ws?token={server.token()}") as ws:
        frames = await text_turn(ws, "speak please")

    kinds = [f["t"] for f in frames if f["t"] in ("bot_text_chunk", "response", "error")]
    assert kinds == [
        "bot_text_chunk",
        "response",
        "bot_text_chunk",
        "error",
        "bot_text_chunk",
        "response",
    ]
    assert of(frames, "error")[0]["code"] == "TTS_ERROR"
    assert of(frames, "bot_text_chunk")[1]["data"]["text"] == "This one will TTS_FAIL sadly."
    for f in of(frames, "response"):
        samples, rate = decode_wav(f["data"])
        assert rate == SPEECH_RATE and rms(samples) > 1000
    assert not of(frames, "bot_msg"), "audio was sent, so no bot_msg"
    inputs = [r["input"] for r in llm_stub.speech_requests]
    assert list(dict.fromkeys(inputs)) == [
        "The first sentence is fine.",
        "This one will TTS_FAIL sadly.",
        "The third one is fine too.",
    ]
    assert inputs.count("This one will TTS_FAIL sadly.") == 2, "one retry, then TTS_ERROR"
    assert {(r["model"], r["voice"], r["response_format"]) for r in llm_stub.speech_requests} == {
        ("gpt-4o-mini-tts", "nova", "wav")
    }
    assert frames[-3]["data"]["tts"] == "gpt-4o-mini-tts"


# --- edge-tts, with an injected stream ----------------------------------------------------------


def mp3_of(audio: Audio) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, audio.samples, audio.sample_rate, format="MP3")
    return buf.getvalue()


class FakeCommunicate:
    """Speaks like edge-tts: MP3 in pieces, with metadata chunks between them."""

    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, text: str, voice: str) -> None:
        self.text, self.voice = text, voice
        FakeCommunicate.calls.append((text, voice))

    async def stream(self) -> AsyncIterator[Mapping[str, Any]]:
        speech = await EspeakTTS(voice=None).synthesize(self.text)
        mp3 = mp3_of(speech)
        for i in range(0, len(mp3), 4096):
            yield {"type": "SentenceBoundary", "offset": i, "text": self.text}
            yield {"type": "audio", "data": mp3[i : i + 4096]}


class Unreachable:
    def __init__(self, text: str, voice: str) -> None:
        pass

    async def stream(self) -> AsyncIterator[Mapping[str, Any]]:
        raise aiohttp.ClientConnectionError("Cannot connect to host speech.platform.bing.com:443")
        yield {}  # pragma: no cover - makes this an async generator


async def edge_turn(tmp_path: Any, communicate: Any, text: str) -> list[dict[str, Any]]:
    """One text turn against the real app, served by uvicorn, with edge's stream injected."""
    settings = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), "LIVE_ECHO_DELAY_MS": "0"})
    tts = EdgeTTS(voice=None, fallback=EspeakTTS(voice=None), communicate=communicate)
    app = create_app(settings, Engines(llm=EchoLLM(delay_ms=0), tts=tts))
    token = issue_token(load_jwt_secret(tmp_path, None), "eve", 60)
    port = free_port()
    with ThreadedServer(app, port):
        async with open_live(f"ws://127.0.0.1:{port}/api/live_chat/ws?token={token}") as ws:
            return await text_turn(ws, text)


async def test_edge_mp3_becomes_wav(tmp_path: Any) -> None:
    FakeCommunicate.calls.clear()
    frames = await edge_turn(tmp_path, FakeCommunicate, "Good morning to you.")
    responses = of(frames, "response")
    assert responses and not of(frames, "error")
    for f in responses:
        samples, rate = decode_wav(f["data"])
        assert rate == 22050 and rms(samples) > 300
    assert {voice for _, voice in FakeCommunicate.calls} == {"en-US-AriaNeural"}
    assert frames[-3]["t"] == "metrics" and frames[-3]["data"]["tts"] == "edge"


async def test_edge_unreachable_degrades_to_espeak(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="live_server.providers.tts.edge")
    frames = await edge_turn(tmp_path, Unreachable, "Is anyone out there?")
    assert not of(frames, "error")
    responses = of(frames, "response")
    assert len(responses) == len(of(frames, "bot_text_chunk")) >= 2
    assert all(rms(decode_wav(f["data"])[0]) > 300 for f in responses)
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, (
        "one warning, then the fallback is used without retrying each sentence"
    )
    assert "espeak" in warnings[0].getMessage()
