"""Stored conversations: every live turn is saved, and a socket can continue a conversation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import (
    Frame,
    chat_until_end,
    deltas,
    of,
    open_live,
    open_socket,
    post_chat,
    recv,
    send,
    text_turn,
    types,
    until,
)
from tests.conftest import ServerProcess, start_server
from tests.stubs import DEFAULT_REPLY, StubOpenAI


async def stored(
    server: ServerProcess, conversation_id: str, user: str = "alice", token: str | None = None
) -> httpx.Response:
    """The conversation as the HTTP API returns it."""
    url = f"{server.http}/api/v1/chat/sessions/{conversation_id}/messages"
    token = token or server.token(user)
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(url, headers={"Authorization": f"Bearer {token}"})


async def wait_stored(
    server: ServerProcess, conversation_id: str, count: int, user: str = "alice"
) -> Any:
    """Saving happens after `end`; poll (bounded) until `count` messages are there."""
    token = server.token(user)
    async with asyncio.timeout(10):
        while True:
            r = await stored(server, conversation_id, token=token)
            assert r.status_code in (200, 404), r.text
            if r.status_code == 200 and len(r.json()["messages"]) >= count:
                return r.json()
            await asyncio.sleep(0.02)


async def test_servers_starting_together_on_a_new_data_dir_all_start(tmp_path: Path):
    """Processes started at the same moment on a fresh data dir (several restarted at once):
    the first makes the signing secret and switches the database to WAL; the others wait for
    it rather than fail (once "database is locked", once an empty secret), and every one
    accepts the tokens signed with the secret kept in the data dir."""
    data = tmp_path / "data"
    logs = [tmp_path / f"server-{i}" for i in range(3)]
    for log in logs:
        log.mkdir()
    loop = asyncio.get_running_loop()
    started = await asyncio.gather(
        *(
            loop.run_in_executor(None, lambda log=log: start_server(log, LIVE_DATA_DIR=str(data)))
            for log in logs
        ),
        return_exceptions=True,
    )
    servers = [s for s in started if isinstance(s, ServerProcess)]
    try:
        assert len(servers) == 3, [s for s in started if not isinstance(s, ServerProcess)]
        token = servers[0].token()
        for server in servers:
            async with open_live(f"{server.ws}/api/live_chat/ws?token={token}") as ws:
                assert deltas(await text_turn(ws, "Hello."))
    finally:
        for server in servers:
            server.stop()


async def test_a_conversation_survives_a_restart(tmp_path: Path):
    server = start_server(tmp_path, LIVE_ECHO_DELAY_MS="0")
    try:
        async with open_live(server.live_url()) as ws:
            assert ws.conversation["resumed"] is False and ws.conversation["messages"] == 0
            conversation_id = ws.conversation["id"]
            await text_turn(ws, "My name is Ada.")
            await text_turn(ws, "I live in Lyon.")
        await wait_stored(server, conversation_id, 4)
    finally:
        server.stop()

    server = start_server(tmp_path, LIVE_ECHO_DELAY_MS="0")  # the same data dir
    try:
        url = f"{server.live_url()}&conversation_id={conversation_id}"
        async with open_live(url) as ws:
            assert ws.conversation == {"id": conversation_id, "resumed": True, "messages": 4}
            frames = await text_turn(ws, "Where do I live?")
        # The echo model counts the user messages it was given: the history reached it.
        assert "message number 3 from you" in deltas(frames)
        body = await wait_stored(server, conversation_id, 6)
    finally:
        server.stop()
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages[::2]] == [
        "My name is Ada.",
        "I live in Lyon.",
        "Where do I live?",
    ]
    assert "I live in Lyon." in messages[3]["content"]
    assert body["title"] == "My name is Ada."
    reply = messages[1]
    assert reply["input_type"] == "text" and reply["interrupted"] is False
    for key in ("llm_ttft", "llm_total_time", "tts_first_frame_time", "wav_to_tts_total_time"):
        assert isinstance(reply["metrics"][key], float), key
    assert reply["metrics"]["chat_model"] == "echo"
    assert messages[0]["created_at"] <= messages[1]["created_at"] <= messages[2]["created_at"]


async def test_reconnecting_with_the_id_continues_and_without_it_starts_anew(
    echo_server: ServerProcess,
):
    async with open_live(echo_server.live_url("carol")) as ws:
        first_id = ws.conversation["id"]
        await text_turn(ws, "one")
    async with open_live(f"{echo_server.live_url('carol')}&conversation_id={first_id}") as ws:
        assert ws.conversation["resumed"] is True and ws.conversation["id"] == first_id
        frames = await text_turn(ws, "two")
    assert "message number 2 from you" in deltas(frames)

    async with open_live(echo_server.live_url("carol")) as ws:
        assert ws.conversation["id"] != first_id and ws.conversation["resumed"] is False
        frames = await text_turn(ws, "fresh start")
    assert "message number 1 from you" in deltas(frames)

    # A chosen id that does not exist yet becomes the user's new conversation.
    async with open_live(f"{echo_server.live_url('carol')}&conversation_id=carol-notes") as ws:
        assert ws.conversation == {"id": "carol-notes", "resumed": False, "messages": 0}


async def test_someone_elses_conversation_is_refused(echo_server: ServerProcess):
    async with open_live(echo_server.live_url("dora")) as ws:
        dora_id = ws.conversation["id"]
        await text_turn(ws, "private")
    await wait_stored(echo_server, dora_id, 2, "dora")
    cases = [(dora_id, "FORBIDDEN"), ("bad id!", "INVALID_MESSAGE_FORMAT")]
    for conversation_id, code in cases:
        url = f"{echo_server.live_url('eve')}&conversation_id={quote(conversation_id)}"
        async with open_socket(url) as ws:
            error = await recv(ws)
            with pytest.raises(ConnectionClosed):
                await recv(ws)
        assert error["t"] == "error" and error["code"] == code
        assert ws.close_code == 1008
    # And through the HTTP API it does not even exist for eve.
    url = f"{echo_server.http}/api/v1/chat/sessions/{dora_id}/messages"
    async with httpx.AsyncClient() as http:
        r = await http.get(url, params={"token": echo_server.token("eve")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


def heard_sentences(before: list[Frame], after: list[Frame]) -> list[tuple[str, int]]:
    """The sentences whose audio reached the client, with their durations."""
    frames = before + after
    out = []
    for i, f in enumerate(frames):
        if f["t"] == "response":
            assert frames[i - 1]["t"] == "bot_text_chunk"
            out.append((frames[i - 1]["data"]["text"], f["duration_ms"]))
    return out


async def interrupt_after(ws: Any, audio_frames: int, interrupt: Frame) -> list[Frame]:
    await send(ws, {"t": "text_input", "text": "Please read me the long story."})
    frames: list[Frame] = []
    while len(of(frames, "response")) < audio_frames:
        frames.append(await recv(ws))
    await send(ws, interrupt)
    frames += await until(ws, "end")
    return frames


async def test_an_interrupted_turn_saves_only_what_was_sent(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    llm_stub.delay = 0.03
    async with open_live(stub_server.live_url("fay")) as ws:
        frames = await interrupt_after(ws, 2, {"t": "interrupt"})
        conversation_id = ws.conversation["id"]
    heard = [text for text, _ in heard_sentences(frames, [])]
    assert len(heard) >= 2
    body = await wait_stored(stub_server, conversation_id, 2, "fay")
    reply = body["messages"][1]
    assert reply["interrupted"] is True
    assert reply["content"] == " ".join(heard)
    assert "eighth sentence" not in reply["content"]


async def test_a_turn_cut_off_by_a_disconnect_is_saved_as_interrupted(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    llm_stub.delay = 0.03
    async with open_live(stub_server.live_url("ivo")) as ws:
        conversation_id = ws.conversation["id"]
        await send(ws, {"t": "text_input", "text": "Tell me everything."})
        frames = await until(ws, "response")
    body = await wait_stored(stub_server, conversation_id, 2, "ivo")
    user, reply = body["messages"]
    assert user["content"] == "Tell me everything."
    assert reply["interrupted"] is True
    assert reply["content"].startswith(heard_sentences(frames, [])[0][0])
    assert "eighth sentence" not in reply["content"]


async def test_played_ms_cuts_the_saved_reply_to_what_was_played(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    llm_stub.delay = 0.03
    async with open_live(stub_server.live_url("gil")) as ws:
        await send(ws, {"t": "text_input", "text": "warm up"})
        await until(ws, "end")
        frames = await interrupt_after(ws, 3, {"t": "interrupt", "played_ms": 0})
        frames = [f for f in frames if f.get("turn_id") == 2]
        sent = heard_sentences(frames, [])
        # The client played the first sentence and part of the second.
        played = sent[0][1] + sent[1][1] // 2
        await send(ws, {"t": "text_input", "text": "again"})
        frames = await interrupt_after_sent(ws, 3, played)
        conversation_id = ws.conversation["id"]
    body = await wait_stored(stub_server, conversation_id, 6, "gil")
    # played_ms=0 keeps nothing of the reply; the cut at 1.5 sentences keeps one sentence.
    assert body["messages"][3]["content"] == "" and body["messages"][3]["interrupted"]
    first = heard_sentences(frames, [])[0][0]
    assert body["messages"][5]["content"] == first
    assert body["messages"][5]["interrupted"] is True


async def test_played_ms_after_end_cuts_the_reply_still_playing(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    """The reply was all sent, but the client was still playing it when the user cut in."""
    async with open_live(stub_server.live_url("jay")) as ws:
        frames = await text_turn(ws, "Tell me the eight sentences.")
        sent = heard_sentences(frames, [])
        played = sent[0][1] + sent[1][1] + 10
        await send(ws, {"t": "interrupt", "played_ms": played})
        await text_turn(ws, "What did you say?")
        conversation_id = ws.conversation["id"]
    kept = f"{sent[0][0]} {sent[1][0]}"
    # The model's history holds only what was played, marked as cut off.
    history = llm_stub.chat_requests[-1]["messages"]
    assert history[-2] == {"role": "assistant", "content": f"{kept} [interrupted by the user]"}
    body = await wait_stored(stub_server, conversation_id, 4, "jay")
    reply = body["messages"][1]
    assert reply["content"] == kept and reply["interrupted"] is True
    assert reply["metrics"]["played_ms"] == played
    assert body["messages"][3]["interrupted"] is False


async def interrupt_after_sent(ws: Any, audio_frames: int, played_ms: int) -> list[Frame]:
    """For a turn already asked for: wait for its audio, then interrupt with `played_ms`."""
    frames: list[Frame] = []
    while len([f for f in frames if f["t"] == "response" and f.get("turn_id") == 3]) < audio_frames:
        frames.append(await recv(ws))
    await send(ws, {"t": "interrupt", "played_ms": played_ms})
    frames += await until(ws, "end")
    return [f for f in frames if f.get("turn_id") == 3]


async def test_the_history_sent_to_the_model_is_bounded(
    server_factory: Any, stub: StubOpenAI, llm_stub: StubOpenAI
):
    server = server_factory(
        LIVE_LLM="openai",
        LIVE_LLM_BASE_URL=stub.base_url,
        LIVE_LLM_API_KEY="sk-test",
        LIVE_TTS="none",
        LIVE_SYSTEM_PROMPT="sys",
        LIVE_HISTORY_MAX_MESSAGES="5",
        LIVE_HISTORY_MAX_CHARS="1040",
    )
    llm_stub.reply = lambda messages: "Short answer."
    async with open_live(server.live_url("hal")) as ws:
        for i in range(4):
            await text_turn(ws, f"question {i}")
        # Five messages at most: the system prompt aside, two exchanges and the new question.
        sent = llm_stub.chat_requests[-1]["messages"]
        assert [m["role"] for m in sent] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert [m["content"] for m in sent[1::2]][:2] == ["question 1", "question 2"]

        # A long exchange uses up the character budget: older ones are dropped first.
        await text_turn(ws, "x" * 1000)
        await text_turn(ws, "after the long one")
        sent = llm_stub.chat_requests[-1]["messages"]
        assert [m["content"] for m in sent] == [
            "sys",
            "x" * 1000,
            "Short answer.",
            "after the long one",
        ]


async def chat_reply(ws: Any, session_id: str, text: str) -> None:
    """One chat-mode reply on a unified socket, through its `end`."""
    await send(ws, {"ct": "chat", "t": "send", "session_id": session_id, "message": text})
    await chat_until_end(ws)


async def test_a_live_socket_hears_the_turns_others_add_to_its_conversation(
    echo_server: ServerProcess,
):
    """Its history is kept in memory: a chat reply, an HTTP reply and another live socket's
    turn on the same conversation all reach its model's next turn."""
    async with open_live(echo_server.live_url("uma")) as a:
        conversation_id = a.conversation["id"]
        assert "message number 1 from you" in deltas(await text_turn(a, "one"))
        async with open_live(echo_server.unified_url("uma")) as chat:
            await chat_reply(chat, conversation_id, "two")
        status, events = await post_chat(
            echo_server,
            {"session_id": conversation_id, "message": "three"},
            authorization=f"Bearer {echo_server.token('uma')}",
        )
        assert status == 200 and events[-1]["type"] == "end"
        url = f"{echo_server.live_url('uma')}&conversation_id={conversation_id}"
        async with open_live(url) as b:
            assert b.conversation["messages"] == 6
            assert "message number 4 from you" in deltas(await text_turn(b, "four"))
        # The echo model counts the user messages it is given: all five reached it.
        assert "message number 5 from you" in deltas(await text_turn(a, "five"))
    body = await wait_stored(echo_server, conversation_id, 10, "uma")
    assert [m["content"] for m in body["messages"][::2]] == ["one", "two", "three", "four", "five"]


async def test_a_reply_cut_on_another_socket_is_cut_in_this_ones_history(
    stub_server: ServerProcess, llm_stub: StubOpenAI
):
    async with open_live(stub_server.live_url("vic")) as a:
        conversation_id = a.conversation["id"]
        llm_stub.reply = lambda messages: "A's answer."
        await text_turn(a, "From A.")
        llm_stub.reply = lambda messages: DEFAULT_REPLY
        url = f"{stub_server.live_url('vic')}&conversation_id={conversation_id}"
        async with open_live(url) as b:
            sent = heard_sentences(await text_turn(b, "Tell B the eight sentences."), [])
            # B's user stopped the playback after two sentences, once the reply was all sent.
            await send(b, {"t": "interrupt", "played_ms": sent[0][1] + sent[1][1] + 10})
            kept = f"{sent[0][0]} {sent[1][0]}"
            async with asyncio.timeout(10):  # the cut is kept in memory before it is stored
                while True:
                    body = await wait_stored(stub_server, conversation_id, 4, "vic")
                    if body["messages"][3]["content"] == kept:
                        break
                    await asyncio.sleep(0.02)
        await text_turn(a, "What did B hear?")
    assert llm_stub.chat_requests[-1]["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "From A."},
        {"role": "assistant", "content": "A's answer."},
        {"role": "user", "content": "Tell B the eight sentences."},
        {"role": "assistant", "content": f"{kept} [interrupted by the user]"},
        {"role": "user", "content": "What did B hear?"},
    ]


async def test_another_users_reply_under_the_same_id_is_not_heard(echo_server: ServerProcess):
    """An id a socket chose is nobody's until its first turn is stored: someone else may take
    it first, and their exchange must not reach this socket's model."""
    url = f"{echo_server.live_url('wes')}&conversation_id=our-notes"
    async with open_live(url) as wes:
        assert wes.conversation == {"id": "our-notes", "resumed": False, "messages": 0}
        async with open_live(echo_server.unified_url("xan")) as chat:
            await chat_reply(chat, "our-notes", "xan's secret")
        frames = await text_turn(wes, "mine")
        assert "message number 1 from you" in deltas(frames)
        assert "secret" not in deltas(frames)
        # The id is xan's now: wes's turn went through, but could not be stored under it,
        # which the client hears before the turn's `end`.
        assert types(frames)[-3:] == ["error", "end", "metrics"]
        assert frames[-3]["code"] == "FORBIDDEN" and frames[-3]["turn_id"] == frames[-2]["turn_id"]
