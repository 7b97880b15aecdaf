"""The OpenAI Realtime API at `/v1/realtime`, driven by the official `openai` SDK against the
real server, with the OpenAI-compatible stub as its model and real speech in."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI

from tests.conftest import ServerProcess, stub_llm
from tests.speech import SHORT, load, silence, word_error_rate
from tests.stubs import StubOpenAI

TIMEOUT = 60


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., ServerProcess], stub: StubOpenAI) -> ServerProcess:
    return server_factory(**stub_llm(stub), LIVE_STT="whisper", LIVE_STT_WORKERS="1")


@pytest.fixture(scope="module")
def key(server: ServerProcess) -> str:
    return server.cli("apikey", "create", "--name", "realtime-tests")


@asynccontextmanager
async def realtime(server: ServerProcess, key: str, **query: str) -> AsyncIterator[Any]:
    client = AsyncOpenAI(api_key=key, base_url=f"{server.http}/v1")
    async with client.realtime.connect(model="live-test", extra_query=query) as conn:
        created = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert created.type == "session.created"
        yield conn


async def until(conn: Any, kind: str, timeout: float = TIMEOUT) -> list[Any]:
    """Events up to and including the first of `kind`."""
    got = []
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            got.append(event)
            if event.type == kind:
                return got


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def text_only(conn: Any) -> None:
    await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    updated = (await until(conn, "session.updated"))[-1]
    assert updated.session.output_modalities == ["text"]


async def test_text_in_text_out(server, key, llm_stub):
    llm_stub.reply = lambda messages: "Hello from the model. How can I help?"
    async with realtime(server, key) as conn:
        await text_only(conn)
        await conn.conversation.item.create(item=user_text("Hi there"))
        added = await until(conn, "conversation.item.added")
        assert added[-1].item.role == "user"
        await conn.response.create()
        got = await until(conn, "response.done")
    kinds = [e.type for e in got]
    assert kinds.index("response.created") < kinds.index("response.output_text.delta")
    deltas = "".join(e.delta for e in got if e.type == "response.output_text.delta")
    assert deltas == "Hello from the model. How can I help?"
    (text_done,) = [e for e in got if e.type == "response.output_text.done"]
    assert text_done.text == deltas
    done = got[-1].response
    assert done.status == "completed" and done.output[0].content[0].text == deltas
    assert llm_stub.chat_requests[-1]["messages"][0] == {
        "role": "system",
        "content": "You are a test.",
    }
    assert llm_stub.chat_requests[-1]["messages"][-1] == {"role": "user", "content": "Hi there"}


async def test_text_in_audio_out(server, key, llm_stub):
    llm_stub.reply = lambda messages: "The first sentence. And the second one."
    async with realtime(server, key) as conn:
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        await until(conn, "session.updated")
        await conn.conversation.item.create(item=user_text("Say something"))
        await conn.response.create()
        got = await until(conn, "response.done")
    audio = [base64.b64decode(e.delta) for e in got if e.type == "response.output_audio.delta"]
    assert len(audio) > 2, "audio streams in small chunks"
    assert max(len(chunk) for chunk in audio) <= 2 * 2400  # 100 ms at 24 kHz, 16-bit
    pcm = np.frombuffer(b"".join(audio), dtype="<i2")
    assert len(pcm) > 24000 // 2 and np.sqrt(np.mean(pcm.astype(float) ** 2)) > 100
    transcript = "".join(e.delta for e in got if e.type == "response.output_audio_transcript.delta")
    (done,) = [e for e in got if e.type == "response.output_audio_transcript.done"]
    assert done.transcript.replace(" ", "") == transcript.replace(" ", "")
    assert "first sentence" in transcript and "second one" in transcript
    assert got[-1].response.status == "completed"
    assert llm_stub.chat_requests[-1]["messages"][0]["content"] == "Be brief."


async def test_cancel_stops_the_response(server, key, llm_stub):
    llm_stub.delay = 0.05
    llm_stub.reply = lambda messages: "word " * 200
    async with realtime(server, key) as conn:
        await text_only(conn)
        await conn.conversation.item.create(item=user_text("Talk for a long time"))
        await conn.response.create()
        first = await until(conn, "response.output_text.delta")
        response_id = first[-1].response_id
        await conn.response.cancel()
        got = await until(conn, "response.done")
        assert got[-1].response.status == "cancelled"
        assert got[-1].response.id == response_id
        # Nothing of that response comes after its response.done.
        await conn.conversation.item.create(item=user_text("Are you there?"))
        after = await until(conn, "conversation.item.done")
    assert all(getattr(e, "response_id", None) != response_id for e in after)
    assert llm_stub.stream_closed.wait(5), "the model's stream was closed"


async def test_server_vad_hears_real_speech_and_answers(server, key, llm_stub):
    llm_stub.reply = lambda messages: "A new home it is."
    pcm, rate = load(SHORT, rate=24000)
    audio = np.concatenate([silence(0.5, rate), pcm, silence(1.5, rate)])
    async with realtime(server, key) as conn:
        await text_only(conn)
        step = rate // 10
        for i in range(0, len(audio), step):
            chunk = base64.b64encode(audio[i : i + step].astype("<i2").tobytes()).decode()
            await conn.input_audio_buffer.append(audio=chunk)
        got = await until(conn, "response.done", timeout=120)
    kinds = [e.type for e in got]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ):
        assert kind in kinds, kind
    assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
    (heard,) = [e for e in got if e.type.endswith("input_audio_transcription.completed")]
    assert word_error_rate(SHORT.text, heard.transcript) <= 0.2, heard.transcript
    committed = next(e for e in got if e.type == "input_audio_buffer.committed")
    assert heard.item_id == committed.item_id
    assert got[-1].response.status == "completed"
    assert llm_stub.chat_requests[-1]["messages"][-1]["content"] == heard.transcript


async def test_truncate_keeps_only_what_was_played(server, key, llm_stub):
    llm_stub.reply = lambda messages: "First part here. Second part there. Third part last."
    async with realtime(server, key) as conn:
        await conn.conversation.item.create(item=user_text("Tell me three things"))
        await conn.response.create()
        got = await until(conn, "response.done")
        item_id = got[-1].response.output[0].id
        # The first sentence's audio: the audio deltas between the first two transcripts.
        samples, sentences = 0, 0
        for event in got:
            if event.type == "response.output_audio_transcript.delta":
                sentences += 1
            elif event.type == "response.output_audio.delta" and sentences == 1:
                samples += len(base64.b64decode(event.delta)) // 2
        played_ms = samples * 1000 // 24000 + 50
        await conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=played_ms
        )
        truncated = (await until(conn, "conversation.item.truncated"))[-1]
        assert truncated.item_id == item_id and truncated.audio_end_ms == played_ms
        await conn.conversation.item.create(item=user_text("What did you say?"))
        await conn.response.create()
        await until(conn, "response.done")
    history = llm_stub.chat_requests[-1]["messages"]
    assert history[-2]["role"] == "assistant"
    assert history[-2]["content"].startswith("First part here.")
    assert "Second part" not in history[-2]["content"]
    assert "interrupted" in history[-2]["content"]


async def test_a_bad_key_is_refused(server):
    client = AsyncOpenAI(api_key="lsk_not-a-real-key", base_url=f"{server.http}/v1")
    async with client.realtime.connect(model="live-test") as conn:
        event = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert event.type == "error" and event.error.code == "unauthorized"
        with pytest.raises(Exception, match="1008"):
            await asyncio.wait_for(conn.recv(), TIMEOUT)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_message_format"),
        ({"type": "no.such.event", "event_id": "ev1"}, "unsupported"),
        ({"type": "input_audio_buffer.append", "audio": "***", "event_id": "ev2"}, "audio_error"),
        ({"type": "input_audio_buffer.commit", "event_id": "ev3"}, "audio_error"),
        ({"type": "response.cancel", "event_id": "ev4"}, "processing_error"),
        ({"type": "response.create", "event_id": "ev5"}, "invalid_message"),
        (
            {"type": "conversation.item.truncate", "item_id": "item_x", "audio_end_ms": 5},
            "not_found",
        ),
        (
            {"type": "session.update", "session": {"tools": [{"type": "function"}]}},
            "unsupported",
        ),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            },
            "unsupported",
        ),
        ({"type": "conversation.item.create", "item": {"role": "system"}}, "unsupported"),
    ],
)
async def test_bad_events_get_an_error_and_the_connection_stays(server, key, llm_stub, raw, code):
    async with realtime(server, key) as conn:
        await text_only(conn)
        await conn._connection.send(raw if isinstance(raw, str) else json.dumps(raw))
        error = (await until(conn, "error"))[-1]
        assert error.error.code == code, error.error.message
        if isinstance(raw, dict) and "event_id" in raw:
            assert error.error.event_id == raw["event_id"]
        await conn.conversation.item.create(item=user_text("still there?"))
        await conn.response.create()
        assert (await until(conn, "response.done"))[-1].response.status == "completed"


async def test_conversations_are_stored_and_resumed(server, key, llm_stub):
    async with realtime(server, key, username="rhea") as conn:
        opened = (await until(conn, "conversation.created"))[-1]
        await text_only(conn)
        await conn.conversation.item.create(item=user_text("Remember the word teapot"))
        await conn.response.create()
        await until(conn, "response.done")
    conversation_id = opened.conversation.id
    async with realtime(server, key, username="rhea", conversation_id=conversation_id) as conn:
        again = (await until(conn, "conversation.created"))[-1]
        assert again.conversation.id == conversation_id
        await text_only(conn)
        await conn.conversation.item.create(item=user_text("Which word?"))
        await conn.response.create()
        await until(conn, "response.done")
    contents = [m["content"] for m in llm_stub.chat_requests[-1]["messages"]]
    assert "Remember the word teapot" in contents
