"""Bad input and failing providers: a coded error, exactly one `end`, a session that goes on."""

from __future__ import annotations

import time

import pytest

from tests.client import deltas, of, open_live, recv, send, text_turn, types, until
from tests.conftest import ServerProcess, free_port
from tests.stubs import StubOpenAI

MALFORMED = [
    ("not json", "INVALID_MESSAGE_FORMAT"),
    ("[1, 2, 3]", "INVALID_MESSAGE_FORMAT"),
    ('"text_input"', "INVALID_MESSAGE_FORMAT"),
    ('{"text": "no type"}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": 5}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "dance"}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "text_input"}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "text_input", "text": "   "}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "text_input", "text": 42}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "speaking_part"}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "start_speaking", "stamp": "s1", "sample_rate": 1}', "INVALID_MESSAGE_FORMAT"),
    ('{"t": "end_speaking", "stamp": {"a": 1}}', "INVALID_MESSAGE_FORMAT"),
]


async def test_malformed_frames_get_coded_errors_and_the_session_survives(
    echo_server: ServerProcess,
):
    async with open_live(echo_server.live_url()) as ws:
        for raw, code in MALFORMED:
            await send(ws, raw)
            frame = await recv(ws)
            assert frame["t"] == "error", raw
            assert frame["code"] == code, raw
            assert isinstance(frame["data"], str) and frame["data"], raw
        await ws.send(b"\x00\x01binary")
        frame = await recv(ws)
        assert frame["t"] == "error" and frame["code"] == "INVALID_MESSAGE_FORMAT"

        frames = await text_turn(ws, "still here")
    assert "still here" in deltas(frames)


async def test_text_over_the_limit_is_refused(server_factory):
    server = server_factory(LIVE_MAX_TEXT_CHARS="50", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "x" * 51})
        frame = await recv(ws)
        assert frame["t"] == "error" and frame["code"] == "LIMIT_EXCEEDED"
        assert "50" in frame["data"]
        frames = await text_turn(ws, "y" * 50)
    assert "y" * 50 in deltas(frames)


async def test_oversize_frame_closes_with_1009_and_the_server_stays_up(server_factory):
    server = server_factory(LIVE_MAX_FRAME_BYTES="65536", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "z" * 70000})
        with pytest.raises(Exception):  # noqa: B017 - any close is checked below
            await recv(ws)
        assert ws.close_code == 1009
    async with open_live(server.live_url()) as ws:
        frames = await text_turn(ws, "after the big one")
    assert of(frames, "end")


async def test_llm_failure_mid_stream_ends_the_turn_and_the_session_goes_on(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    async with open_live(stub_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "please FAIL_MIDSTREAM now"})
        frames = await until(ws, "end")
        await recv(ws)  # the closing metrics
        errors = of(frames, "error")
        assert len(errors) == 1 and errors[0]["code"] == "LLM_ERROR"
        assert of(frames, "bot_delta_chunk"), "the deltas before the failure arrived"
        assert frames[-1]["data"] == {"interrupted": False}
        assert types(frames).count("end") == 1
        # A reply that broke off has no reason to finish with.
        figures = of(frames, "metrics")[-1]["data"]
        assert figures["chat_model"] and "llm_finish_reason" not in figures

        ok = await text_turn(ws, "and now a normal question")
    assert deltas(ok).startswith("The first sentence is right here.")
    assert not of(ok, "error")
    figures = of(ok, "metrics")[-2]["data"]  # the turn's figures, before its `end`
    assert figures["llm_finish_reason"] == "stop"
    assert figures["llm_usage"] == llm_stub.usages[-1], "the model's own count, passed on"
    # The failed turn stays in the history with only the text that reached the client.
    history = llm_stub.chat_requests[-1]["messages"]
    assert history[1]["content"] == "please FAIL_MIDSTREAM now"
    assert history[3]["content"] == "and now a normal question"


async def test_llm_http_error_is_reported(stub_server: ServerProcess, llm_stub: StubOpenAI):
    async with open_live(stub_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "FAIL_HTTP"})
        frames = await until(ws, "end")
    errors = of(frames, "error")
    assert len(errors) == 1 and errors[0]["code"] == "LLM_ERROR"
    assert "500" in errors[0]["data"]
    assert not of(frames, "bot_delta_chunk")


async def test_the_llm_timeout_is_the_whole_budget(server_factory, llm_stub: StubOpenAI):
    """A model that never answers fails the turn after LIVE_LLM_TIMEOUT_S, not after that
    once per attempt (the SDK retries once)."""
    budget = 2.0
    server = server_factory(
        LIVE_LLM="openai",
        LIVE_LLM_BASE_URL=llm_stub.base_url,
        LIVE_LLM_TIMEOUT_S=str(budget),
        LIVE_TTS="none",
    )
    async with open_live(server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "HANG please"})
        started = time.monotonic()
        frames = await until(ws, "end")
        took = time.monotonic() - started
        error = of(frames, "error")[0]
        assert error["code"] == "LLM_ERROR" and "LIVE_LLM_TIMEOUT_S" in error["data"]
        # Two attempts would take twice the budget, plus the SDK's back-off between them.
        assert budget <= took < 1.5 * budget, took
        await recv(ws)
        assert of(await text_turn(ws, "and now?"), "bot_delta_chunk")  # the socket goes on


async def test_unreachable_llm_is_reported(server_factory):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = server_factory(LIVE_LLM="openai", LIVE_LLM_BASE_URL=dead, LIVE_LLM_TIMEOUT_S="5")
    async with open_live(server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "anyone there?"})
        frames = await until(ws, "end")
        assert of(frames, "error")[0]["code"] == "LLM_ERROR"
        await recv(ws)
        await send(ws, {"t": "text_input", "text": "again?"})
        again = await until(ws, "end")
    assert of(again, "error")[0]["code"] == "LLM_ERROR"
