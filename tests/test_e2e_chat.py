"""Chat mode (`ct: chat`): bound listeners, concurrent replies, interrupts and refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.client import Frame, chat_until_end, open_live, open_socket, recv, send
from tests.conftest import ServerProcess
from tests.stubs import StubOpenAI


def plain(text: str) -> list[dict[str, str]]:
    return [{"type": "plain", "text": text}]


def text_of(frames: list[Frame], message_id: str) -> str:
    return "".join(
        f["data"] for f in frames if f.get("type") == "plain" and f.get("message_id") == message_id
    )


async def test_two_sockets_bound_to_one_session_both_receive_the_reply(
    echo_server: ServerProcess,
):
    async with open_live(echo_server.unified_url()) as a, open_live(echo_server.unified_url()) as b:
        # A session that does not exist cannot be bound to; a send may name a new one.
        await send(a, {"ct": "chat", "t": "bind", "session_id": "shared-1"})
        missing = await recv(a)
        assert missing["t"] == "error" and missing["code"] == "NOT_FOUND"
        await send(a, {"ct": "chat", "t": "send", "session_id": "shared-1", "message": "start"})
        await chat_until_end(a)
        for ws in (a, b):
            await send(ws, {"ct": "chat", "t": "bind", "session_id": "shared-1"})
            bound = await recv(ws)
            assert bound["type"] == "session_bound" and bound["session_id"] == "shared-1"
            assert bound["message_id"]
        await send(
            a,
            {
                "ct": "chat",
                "t": "send",
                "session_id": "shared-1",
                "message_id": "m1",
                "message": plain("Hello both of you"),
            },
        )
        got_a, got_b = await asyncio.gather(chat_until_end(a, "m1"), chat_until_end(b, "m1"))
    # Every frame reached both sockets, in the same order, and the sender got no duplicates.
    assert got_a == got_b
    kinds = [f["type"] for f in got_a]
    assert kinds[-4:] == ["agent_stats", "user_message_saved", "message_saved", "end"]
    assert kinds[0] == "run_started" and kinds[-5] == "complete"
    assert set(kinds[1:-5]) == {"plain"}
    assert all(f["streaming"] is True and f["chain_type"] is None for f in got_a[1:-4])
    assert all(f["session_id"] == "shared-1" and f["message_id"] == "m1" for f in got_a)
    assert "Hello both of you" in text_of(got_a, "m1")
    stats = got_a[-4]["data"]
    assert stats["time_to_first_token"] >= 0 and stats["total_time"] >= stats["time_to_first_token"]
    saved = got_a[-2]["data"]
    assert isinstance(saved["id"], int) and saved["created_at"].endswith("Z")
    assert got_a[-1]["data"] == "" and got_a[-1]["interrupted"] is False
    assert got_a[-1]["saved_message_id"] == saved["id"]

    # The session remembers: a second message on it sees the first exchange.
    async with open_live(echo_server.unified_url()) as c:
        await send(c, {"ct": "chat", "t": "send", "session_id": "shared-1", "message": "again"})
        frames = await chat_until_end(c)
    assert "message number 3" in "".join(f["data"] for f in frames if f["type"] == "plain")


async def test_concurrent_replies_on_one_socket_are_multiplexed(echo_server: ServerProcess):
    url = f"{echo_server.ws}/api/v1/live/ws?username=ivy&ct=chat&api_key={api_key(echo_server)}"
    async with open_socket(url) as ws:
        for n in (1, 2, 3):
            await send(
                ws,
                {"t": "send", "message_id": f"r{n}", "message": plain(f"question {n}")},
            )
        frames: list[Frame] = []
        ended: set[str] = set()
        async with asyncio.timeout(30):
            while len(ended) < 3:
                frames.append(await recv(ws))
                if frames[-1].get("type") == "end":
                    ended.add(frames[-1]["message_id"])
        # A socket forced to chat mode sends no live `conversation` frame.
        assert all(f["ct"] == "chat" for f in frames)
    order = [f["message_id"] for f in frames if f["type"] == "plain"]
    first_end = next(i for i, f in enumerate(frames) if f["type"] == "end")
    assert len({f["message_id"] for f in frames[:first_end]}) == 3, "the replies interleave"
    sessions = set()
    for n in (1, 2, 3):
        assert f"question {n}" in text_of(frames, f"r{n}")
        own = [f for f in frames if f["message_id"] == f"r{n}"]
        assert [f["type"] for f in own][-4:] == [
            "agent_stats",
            "user_message_saved",
            "message_saved",
            "end",
        ]
        sessions.add(own[0]["session_id"])
    assert len(sessions) == 3, "without a session_id each send starts its own session"
    assert order


def api_key(server: ServerProcess) -> str:
    if not hasattr(server, "_chat_key"):
        server._chat_key = server.cli("apikey", "create", "--name", "chat-tests")  # type: ignore[attr-defined]
    return server._chat_key  # type: ignore[attr-defined,no-any-return]


async def test_interrupt_by_message_id_stops_that_reply_only(echo_server: ServerProcess):
    async with open_live(echo_server.unified_url("jon")) as ws:
        for mid in ("keep", "stop"):
            await send(
                ws,
                {"ct": "chat", "t": "send", "message_id": mid, "message": plain("tell me " * 30)},
            )
        frames: list[Frame] = []
        while not any(f.get("message_id") == "stop" and f["type"] == "plain" for f in frames):
            frame = await recv(ws)
            if frame.get("ct") == "chat":
                frames.append(frame)
        await send(ws, {"ct": "chat", "t": "interrupt", "message_id": "stop"})
        ends: dict[str, Frame] = {}
        async with asyncio.timeout(30):
            while len(ends) < 2:
                frames.append(await recv(ws))
                if frames[-1].get("type") == "end":
                    ends[frames[-1]["message_id"]] = frames[-1]
    assert ends["stop"]["interrupted"] is True and ends["keep"]["interrupted"] is False
    stats = {f["message_id"]: f["data"] for f in frames if f.get("type") == "agent_stats"}
    # The finished reply says why it ended and what it cost; the stopped one has no reason.
    assert stats["keep"]["finish_reason"] == "stop"
    usage = stats["keep"]["usage"]
    assert usage["completion_tokens"] > 30 and usage["prompt_tokens"] >= 30
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "finish_reason" not in stats["stop"]
    assert "message number" in text_of(frames, "keep")
    assert "message number" not in text_of(frames, "stop")
    after_end = frames[frames.index(ends["stop"]) + 1 :]
    assert not [f for f in after_end if f.get("message_id") == "stop"]
    # The interrupted reply was saved with what had been written, marked as such.
    saved = [f for f in frames if f.get("type") == "message_saved"]
    assert {f["message_id"] for f in saved} == {"keep", "stop"}


async def test_interrupt_without_id_stops_all_of_the_sockets_replies(echo_server: ServerProcess):
    async with open_live(echo_server.unified_url("kim")) as ws:
        for mid in ("a", "b"):
            await send(
                ws, {"ct": "chat", "t": "send", "message_id": mid, "message": plain("go " * 40)}
            )
        while (frame := await recv(ws)).get("type") != "plain":
            pass
        await send(ws, {"ct": "chat", "t": "interrupt"})
        ends = []
        async with asyncio.timeout(30):
            while len(ends) < 2:
                frame = await recv(ws)
                if frame.get("type") == "end":
                    ends.append(frame)
    assert sorted(e["message_id"] for e in ends) == ["a", "b"]
    assert all(e["interrupted"] for e in ends)


async def test_foreign_sessions_are_refused(echo_server: ServerProcess):
    async with open_live(echo_server.unified_url("lea")) as lea:
        await send(lea, {"ct": "chat", "t": "send", "session_id": "lea-private", "message": "hi"})
        await chat_until_end(lea)
        await send(lea, {"ct": "chat", "t": "bind", "session_id": "lea-private"})
        assert (await recv(lea))["type"] == "session_bound"
        async with open_live(echo_server.unified_url("max")) as mallory:
            await send(mallory, {"ct": "chat", "t": "bind", "session_id": "lea-private"})
            refused = await recv(mallory)
            assert refused["t"] == "error" and refused["code"] == "FORBIDDEN"
            await send(
                mallory,
                {
                    "ct": "chat",
                    "t": "send",
                    "session_id": "lea-private",
                    "message_id": "sneaky",
                    "message": plain("let me in"),
                },
            )
            refused = await recv(mallory)
            assert refused["t"] == "error" and refused["code"] == "FORBIDDEN"
            assert refused["message_id"] == "sneaky"
            # The socket still works.
            await send(mallory, {"ct": "chat", "t": "send", "message": plain("my own")})
            frames = await chat_until_end(mallory)
            assert "my own" in "".join(f["data"] for f in frames if f["type"] == "plain")
        # Lea, bound to her session, heard nothing of it.
        with pytest.raises(TimeoutError):
            await recv(lea, timeout=0.3)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"t": "send"}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": "   "}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": [{"type": "plain"}]}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": [{"type": "image", "url": "x"}]}, "UNSUPPORTED"),
        ({"t": "send", "message": {"text": "hi"}}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": "hi", "enable_streaming": "yes"}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": "hi", "session_id": "no spaces"}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "send", "message": "x" * 5000}, "LIMIT_EXCEEDED"),
        ({"t": "bind"}, "INVALID_MESSAGE_FORMAT"),
        ({"t": "dance"}, "INVALID_MESSAGE_FORMAT"),
    ],
)
async def test_malformed_chat_frames_get_chat_errors(
    echo_server: ServerProcess, frame: Frame, code: str
):
    async with open_live(echo_server.unified_url("ned")) as ws:
        await send(ws, {"ct": "chat", **frame})
        error = await recv(ws)
        assert error["ct"] == "chat" and error["t"] == "error" and error["code"] == code
        assert error["data"]
        await send(ws, {"ct": "chat", "t": "send", "message": "still here?"})
        assert "still here?" in "".join(
            f["data"] for f in await chat_until_end(ws) if f["type"] == "plain"
        )


async def test_without_streaming_the_reply_comes_whole(echo_server: ServerProcess):
    async with open_live(echo_server.unified_url("oli")) as ws:
        await send(
            ws,
            {"ct": "chat", "t": "send", "message": plain("all at once"), "enable_streaming": False},
        )
        frames = await chat_until_end(ws)
    kinds = ["run_started", "plain", "agent_stats", "user_message_saved", "message_saved", "end"]
    assert [f["type"] for f in frames] == kinds
    assert frames[1]["streaming"] is False and "all at once" in frames[1]["data"]


async def test_astrbot_4_29_frames_frame_a_streamed_reply(echo_server: ServerProcess):
    """`run_started` opens the reply, `complete` carries the streamed text whole, and
    `user_message_saved` gives the stored user message's id, as AstrBot 4.29's client expects."""
    async with open_live(echo_server.unified_url("ria")) as ws:
        await send(
            ws, {"ct": "chat", "t": "send", "message": plain("frame me"), "message_id": "m1"}
        )
        frames = await chat_until_end(ws)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "run_started" and frames[0]["data"] == {"run_id": "m1"}
    plain_text = "".join(f["data"] for f in frames if f["type"] == "plain")
    (complete,) = [f for f in frames if f["type"] == "complete"]
    assert complete["data"] == plain_text and complete["streaming"] is True
    assert kinds.index("complete") > max(i for i, k in enumerate(kinds) if k == "plain")
    (user_saved,) = [f for f in frames if f["type"] == "user_message_saved"]
    (saved,) = [f for f in frames if f["type"] == "message_saved"]
    assert user_saved["data"]["id"] == saved["data"]["user_message_id"]
    assert user_saved["data"]["created_at"].endswith("Z")
    assert {f["message_id"] for f in frames} == {"m1"}


async def test_an_interrupted_reply_has_no_complete(echo_server: ServerProcess):
    async with open_live(echo_server.unified_url("rib")) as ws:
        long = "word " * 400
        await send(ws, {"ct": "chat", "t": "send", "message": plain(long), "message_id": "m2"})
        async with asyncio.timeout(30):
            while (await recv(ws)).get("type") != "plain":
                pass
        await send(ws, {"ct": "chat", "t": "interrupt", "message_id": "m2"})
        frames = await chat_until_end(ws, "m2")
    assert "complete" not in [f["type"] for f in frames]
    assert frames[-1]["interrupted"] is True


async def test_a_failing_model_gives_a_chat_error_then_end(
    server_factory: Any, stub: StubOpenAI, llm_stub: StubOpenAI
):
    server = server_factory(
        LIVE_LLM="openai", LIVE_LLM_BASE_URL=stub.base_url, LIVE_LLM_API_KEY="sk-test"
    )
    async with open_live(server.unified_url("pia")) as ws:
        await send(ws, {"ct": "chat", "t": "send", "message_id": "f", "message": "FAIL_HTTP"})
        frames = await chat_until_end(ws)
        errors = [f for f in frames if f.get("t") == "error"]
        assert len(errors) == 1 and errors[0]["code"] == "LLM_ERROR"
        assert errors[0]["message_id"] == "f"
        assert (
            frames[-1]["type"] == "end" and len([f for f in frames if f.get("type") == "end"]) == 1
        )
        # A reply that failed has no reason of the model's to finish with, nor a count.
        stats = next(f["data"] for f in frames if f.get("type") == "agent_stats")
        assert "finish_reason" not in stats and "usage" not in stats
        await send(ws, {"ct": "chat", "t": "send", "message": "fine now"})
        frames = await chat_until_end(ws)
    assert [f["type"] for f in frames][-4:] == [
        "agent_stats",
        "user_message_saved",
        "message_saved",
        "end",
    ]
    stats = frames[-4]["data"]
    assert stats["finish_reason"] == "stop"
    assert stats["usage"] == llm_stub.usages[-1], "the model's own count, passed on"


async def test_too_many_replies_at_once_are_refused(server_factory: Any):
    server = server_factory(LIVE_CHAT_MAX_REPLIES="2", LIVE_ECHO_DELAY_MS="50")
    async with open_live(server.unified_url("quin")) as ws:
        for n in range(3):
            await send(ws, {"ct": "chat", "t": "send", "message_id": f"q{n}", "message": "hi"})
        frames: list[Frame] = []
        async with asyncio.timeout(30):
            while len([f for f in frames if f.get("type") == "end"]) < 2:
                frames.append(await recv(ws))
    errors = [f for f in frames if f.get("t") == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "LIMIT_EXCEEDED"
    assert errors[0]["message_id"] == "q2"


async def test_two_users_may_use_the_same_message_id_at_once(server_factory: Any):
    server = server_factory(LIVE_ECHO_DELAY_MS="20")
    async with open_live(server.unified_url("ray")) as a, open_live(server.unified_url("sue")) as b:
        for ws, who in ((a, "ray"), (b, "sue")):
            await send(
                ws, {"ct": "chat", "t": "send", "message_id": "m1", "message": f"I am {who}"}
            )
        got_a, got_b = await asyncio.gather(chat_until_end(a, "m1"), chat_until_end(b, "m1"))
    assert not [f for f in got_a + got_b if f.get("t") == "error"]
    assert "I am ray" in text_of(got_a, "m1") and "I am sue" in text_of(got_b, "m1")
