"""Interruption: stop at once, drop every stale frame, keep only what was heard."""

from __future__ import annotations

import asyncio

from tests.client import Frame, deltas, of, open_live, recv, send, text_turn, types, until
from tests.conftest import ServerProcess
from tests.stubs import StubOpenAI

TURN_FRAMES = {"bot_delta_chunk", "bot_text_chunk", "response", "bot_msg"}


async def interrupt_after_first_audio(ws: object, text: str) -> tuple[list[Frame], list[Frame]]:
    """Start a turn, interrupt it once its first audio arrives; (frames before, frames after)."""
    await send(ws, {"t": "text_input", "text": text})  # type: ignore[arg-type]
    before = await until(ws, "response")  # type: ignore[arg-type]
    await send(ws, {"t": "interrupt"})  # type: ignore[arg-type]
    after = await until(ws, "end")  # type: ignore[arg-type]
    return before, after


def assert_clean_stop(after: list[Frame]) -> None:
    stop = types(after).index("stop_play")
    assert types(after)[-1] == "end" and after[-1]["data"] == {"interrupted": True}
    assert len(of(after, "end")) == 1 and len(of(after, "stop_play")) == 1
    stale = [f["t"] for f in after[stop:] if f["t"] in TURN_FRAMES]
    assert not stale, f"frames of the interrupted turn after stop_play: {stale}"


async def test_interrupt_stops_the_turn_and_the_next_turn_works(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        before, after = await interrupt_after_first_audio(ws, "a long question " * 20)
        assert_clean_stop(after)
        # The reply was cut short: the echo model's last sentence never came.
        assert "message number" not in deltas(before + after)

        frames = await text_turn(ws, "are you still there?")
    assert {f.get("turn_id") for f in frames} == {2}, "nothing of turn 1 arrives after its end"
    assert "are you still there?" in deltas(frames)
    assert "message number 2" in deltas(frames)


async def test_interrupt_without_a_turn_is_a_no_op(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        await send(ws, {"t": "interrupt"})
        await send(ws, {"t": "interrupt"})
        frames = await text_turn(ws, "hello")
        # Interrupting again after the turn ended changes nothing either.
        await send(ws, {"t": "interrupt"})
        frames2 = await text_turn(ws, "hello again")
    assert frames[0]["t"] == "metrics" and frames[0]["data"] == {"input_type": "text"}
    assert frames2[0]["t"] == "metrics" and frames2[0]["data"] == {"input_type": "text"}
    assert frames[-2]["data"] == {"interrupted": False}


async def test_double_interrupt_sends_one_stop_and_one_end(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "tell me a story"})
        await until(ws, "bot_delta_chunk")
        await send(ws, {"t": "interrupt"})
        await send(ws, {"t": "interrupt"})
        after = await until(ws, "end")
        frames = await text_turn(ws, "next")
    assert len(of(after, "stop_play")) == 1
    assert types(frames).count("end") == 1 and "stop_play" not in types(frames)


async def test_interrupted_reply_keeps_only_what_was_heard(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    llm_stub.delay = 0.03
    async with open_live(stub_server.live_url()) as ws:
        before, after = await interrupt_after_first_audio(ws, "Tell me eight things.")
        assert_clean_stop(after)
        received = before + after
        stop = len(before) + types(after).index("stop_play")
        # What the client heard: sentences whose audio reached it before stop_play.
        heard = [
            f["data"]["text"]
            for i, f in enumerate(received[:stop])
            if f["t"] == "bot_text_chunk" and received[i + 1]["t"] == "response"
        ]
        assert heard, "at least the first sentence was heard"

        # The provider stream was closed, not left generating.
        assert await asyncio.to_thread(llm_stub.stream_closed.wait, 10)

        await text_turn(ws, "What did you say?")

    history = llm_stub.chat_requests[-1]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user"]
    assert history[1]["content"] == "Tell me eight things."
    assert history[2]["content"] == " ".join(heard) + " [interrupted by the user]"
    assert "eighth" not in history[2]["content"]
    assert history[3]["content"] == "What did you say?"


async def test_interrupt_before_any_audio_keeps_no_reply_text(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    llm_stub.delay = 0.05
    async with open_live(stub_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "Say something."})
        await until(ws, "bot_delta_chunk")
        await send(ws, {"t": "interrupt"})
        after = await until(ws, "end")
        assert not of(after, "response")
        await text_turn(ws, "Never mind.")
    assistant = llm_stub.chat_requests[-1]["messages"][2]
    assert assistant == {"role": "assistant", "content": "[interrupted by the user]"}


async def test_stop_play_comes_before_end_when_client_is_fast(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "quick"})
        await until(ws, "user_msg")
        await send(ws, {"t": "interrupt"})
        after = await until(ws, "end")
        # Nothing of the interrupted turn comes after its end, not even late metrics.
        await send(ws, {"t": "text_input", "text": "again"})
        nxt = await recv(ws)
    assert "stop_play" in types(after)
    assert types(after).index("stop_play") < types(after).index("end")
    assert nxt["t"] == "metrics" and nxt["turn_id"] == 2
