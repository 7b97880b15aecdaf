"""A reasoning model behind the server (the OpenAI-compatible stub streaming `<think>` blocks and
`reasoning_content` deltas): its thinking never reaches the text frames, the voice (what the
TTS endpoint is asked to say) or the history the model is sent next turn; `/v1/chat/completions`
passes it through apart, as `reasoning_content`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import (
    chat_until_end,
    open_live,
    open_socket,
    post_chat,
    recv,
    send,
    text_turn,
    until,
)
from tests.conftest import ServerProcess, stub_llm
from tests.stubs import StubOpenAI

THOUGHT = "The user asks about Paris. I should answer briefly."


@pytest.fixture(scope="module")
def reasoning_server(server_factory: Any, stub: StubOpenAI) -> ServerProcess:
    """The stub as the LLM and as the voice, so that what the voice is asked to say is seen."""
    return server_factory(  # type: ignore[no-any-return]
        **stub_llm(stub),
        LIVE_TTS="openai",
        LIVE_TTS_BASE_URL=stub.base_url,
        LIVE_TTS_API_KEY="sk-tts",
    )


def deltas_text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["data"]["text"] for f in frames if f["t"] == "bot_delta_chunk")


async def test_a_think_block_split_across_deltas_is_not_shown_said_or_kept(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: [
        "<thi",
        f"nk>{THOUGHT}</th",
        "ink>\n\n**Paris** is the capital",
        " of France. See https://en.wikipedia.org/wiki/Paris",
        " for more.\n``",
        "`python\nprint('code is not read')\n```\nThat is all.",
    ]
    async with open_live(reasoning_server.live_url()) as ws:
        frames = await text_turn(ws, "What is the capital of France?")
        answer = (
            "**Paris** is the capital of France. See https://en.wikipedia.org/wiki/Paris for more."
            "\n```python\nprint('code is not read')\n```\nThat is all."
        )
        assert deltas_text(frames) == answer
        wire = json.dumps(frames)
        assert "user asks" not in wire and "think" not in wire.lower()
        said = [r["input"] for r in llm_stub.speech_requests]
        assert said == [
            "Paris is the capital of France.",
            "See en dot wikipedia dot org for more.",
            "That is all.",
        ]
        sentences = [f["data"]["text"] for f in frames if f["t"] == "bot_text_chunk"]
        assert "**Paris** is the capital of France." in sentences  # the text keeps the markdown
        (figures,) = [f["data"] for f in frames if f["t"] == "metrics" and "llm_ttft" in f["data"]]
        assert figures["llm_reasoning_chars"] == len(THOUGHT) and figures["llm_reasoning_time"] >= 0

        llm_stub.deltas = lambda messages: ["Madrid."]
        await text_turn(ws, "And of Spain?")
    history = llm_stub.chat_requests[-1]["messages"]
    assert {"role": "assistant", "content": answer} in history
    assert THOUGHT not in json.dumps(history)


async def test_a_block_never_closed_ends_the_turn_with_no_answer(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: ["<think>", "I keep thinking", " and thinking"]
    async with open_live(reasoning_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "Hmm?"})
        frames = await until(ws, "end")
        errors = [f for f in frames if f["t"] == "error"]
        assert [e["code"] for e in errors] == ["NO_ANSWER"]
        assert not [
            f for f in frames if f["t"] in ("bot_delta_chunk", "bot_text_chunk", "response")
        ]
        assert frames[-1]["data"]["interrupted"] is False
        await recv(ws)  # the closing metrics
        # The socket goes on: the next turn is answered.
        llm_stub.deltas = lambda messages: ["Yes."]
        assert deltas_text(await text_turn(ws, "Again?")) == "Yes."
    assert llm_stub.speech_requests[-1]["input"] == "Yes."
    assert "keep thinking" not in json.dumps([r["input"] for r in llm_stub.speech_requests])
    # Nor is the model told next turn that it said its thoughts.
    assert "keep thinking" not in json.dumps(llm_stub.chat_requests[-1]["messages"])


async def test_reasoning_content_deltas_are_not_shown_said_or_kept(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: [
        {"reasoning_content": "Let me think about the weather."},
        {"reasoning_content": " Sunny, probably."},
        "It is sunny.",
    ]
    async with open_live(reasoning_server.live_url()) as ws:
        frames = await text_turn(ws, "Weather?")
        assert deltas_text(frames) == "It is sunny."
        assert "Sunny, probably" not in json.dumps(frames)
        llm_stub.deltas = lambda messages: ["Good."]
        await text_turn(ws, "Thanks.")
    assert [r["input"] for r in llm_stub.speech_requests][-2:] == ["It is sunny.", "Good."]
    assert "think about" not in json.dumps(llm_stub.chat_requests[-1]["messages"])


async def test_chat_completions_passes_the_reasoning_apart(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: ["<think>", "Two and two.", "</think>", "Four."]
    key = reasoning_server.cli("apikey", "create")
    client = openai.AsyncOpenAI(base_url=f"{reasoning_server.http}/v1", api_key=key, max_retries=0)
    async with client:
        whole = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "2+2?"}]
        )
        message = whole.choices[0].message
        assert message.content == "Four."
        assert (message.model_extra or {}).get("reasoning_content") == "Two and two."
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "2+2?"}], stream=True
        )
        content, reasoning = "", ""
        async for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
    assert (content, reasoning) == ("Four.", "Two and two.")


async def test_realtime_output_text_holds_the_answer_alone(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    key = reasoning_server.cli("apikey", "create")
    client = openai.AsyncOpenAI(api_key=key, base_url=f"{reasoning_server.http}/v1")
    async with client.realtime.connect(model="live-test") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await realtime_until(conn, "session.updated")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "2+2?"}],
        }

        llm_stub.deltas = lambda messages: ["<think>Two and", " two.</th", "ink>Four."]
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        got = await realtime_until(conn, "response.done")
        text = "".join(e.delta for e in got if e.type == "response.output_text.delta")
        assert text == "Four." and got[-1].response.status == "completed"
        assert "Two and" not in json.dumps([e.model_dump() for e in got])

        llm_stub.deltas = lambda messages: ["<think>", "Still thinking"]
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        got = await realtime_until(conn, "response.done")
        errors = [e for e in got if e.type == "error"]
        assert [e.error.code for e in errors] == ["no_answer"]  # Realtime's codes are lower case
        assert got[-1].response.status == "failed"
        assert not [e for e in got if e.type == "response.output_text.delta"]


async def realtime_until(conn: Any, kind: str) -> list[Any]:
    got = []
    async with asyncio.timeout(30):
        while (event := await conn.recv()).type != kind:
            got.append(event)
    return [*got, event]


async def test_reasoning_settings_reach_the_model_and_an_opened_block_is_kept_apart(
    server_factory: Any, stub: StubOpenAI, llm_stub: StubOpenAI
) -> None:
    """`LIVE_LLM_REASONING_EFFORT` and `LIVE_LLM_EXTRA_BODY` go with every request; with
    `LIVE_LLM_THINKS_FIRST` a reply that starts inside the block its template opened (only
    `</think>` comes) keeps that start apart too."""
    server: ServerProcess = server_factory(
        **stub_llm(stub),
        LIVE_LLM_REASONING_EFFORT="none",
        LIVE_LLM_EXTRA_BODY='{"chat_template_kwargs": {"enable_thinking": false}}',
        LIVE_LLM_THINKS_FIRST="1",
    )
    llm_stub.deltas = lambda messages: ["Hmm, the user", " greets me.</thi", "nk>\n\nHello!"]
    async with open_live(server.live_url()) as ws:
        frames = await text_turn(ws, "Hi")
    assert deltas_text(frames) == "Hello!" and "greets" not in json.dumps(frames)
    request = llm_stub.chat_requests[-1]
    assert request["reasoning_effort"] == "none"
    assert request["chat_template_kwargs"] == {"enable_thinking": False}


async def test_a_client_that_asks_sees_the_reasoning_apart(
    server_factory: Any, stub: StubOpenAI, llm_stub: StubOpenAI
) -> None:
    """`LIVE_SHOW_REASONING=1`: the live socket gets `bot_reasoning_chunk` frames, chat mode
    AstrBot's `plain` frames with `chain_type: "reasoning"` and the whole of it on `complete`;
    the voice and the history still get the answer alone."""
    server: ServerProcess = server_factory(
        **stub_llm(stub),
        LIVE_TTS="openai",
        LIVE_TTS_BASE_URL=stub.base_url,
        LIVE_TTS_API_KEY="sk-tts",
        LIVE_SHOW_REASONING="1",
    )
    llm_stub.deltas = lambda messages: ["<think>", "Let me see.", "</think>", "It is Paris."]
    async with open_live(server.live_url()) as ws:
        frames = await text_turn(ws, "Capital?")
    shown = "".join(f["data"]["text"] for f in frames if f["t"] == "bot_reasoning_chunk")
    assert shown == "Let me see." and deltas_text(frames) == "It is Paris."
    assert [r["input"] for r in llm_stub.speech_requests] == ["It is Paris."]

    async with open_live(server.unified_url()) as ws:
        await send(ws, {"ct": "chat", "t": "send", "session_id": "why-1", "message": "Capital?"})
        chat = await chat_until_end(ws)
    thinking = [f for f in chat if f.get("chain_type") == "reasoning"]
    assert [f["type"] for f in thinking] == ["plain"] and thinking[0]["data"] == "Let me see."
    (complete,) = [f for f in chat if f["type"] == "complete"]
    assert complete["data"] == "It is Paris." and complete["reasoning"] == "Let me see."
    answer = "".join(f["data"] for f in chat if f["type"] == "plain" and not f.get("chain_type"))
    assert answer == "It is Paris."
    llm_stub.deltas = lambda messages: ["Yes."]
    async with open_live(server.unified_url()) as ws:
        await send(ws, {"ct": "chat", "t": "send", "session_id": "why-1", "message": "Sure?"})
        await chat_until_end(ws)
    assert "Let me see" not in json.dumps(llm_stub.chat_requests[-1]["messages"])


async def test_a_reply_of_reasoning_content_alone_ends_with_no_answer(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: [{"reasoning_content": "Only thinking, never answering."}]
    async with open_live(reasoning_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "Well?"})
        frames = await until(ws, "end")
        assert [f["code"] for f in frames if f["t"] == "error"] == ["NO_ANSWER"]
        assert not [f for f in frames if f["t"] in ("bot_delta_chunk", "response")]
        assert "never answering" not in json.dumps(frames)


async def test_markdown_split_across_deltas_is_said_plainly(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    llm_stub.deltas = lambda messages: [
        "**Par",
        "is** costs *abo",
        "ut* $5.",
        "99 a [ti",
        "cket](https://example.com/t",
        "ickets). It is `op",
        "en` 24/7.",
    ]
    async with open_live(reasoning_server.live_url()) as ws:
        frames = await text_turn(ws, "Price?")
    assert deltas_text(frames).startswith("**Paris** costs *about* $5.99 a [ticket](")
    # (One sentence: the link's address does not count towards a first sentence's length.)
    said = [r["input"] for r in llm_stub.speech_requests][-2:]
    assert said == [
        "Paris costs about five dollars and ninety-nine cents a ticket.",
        "It is open twenty-four seven.",
    ]


async def test_the_http_chat_api_streams_and_stores_the_answer_alone(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    """`/api/v1/chat`: no reasoning in its `plain` events or `complete`, nor in the stored
    messages, nor in what the model is sent next."""
    llm_stub.deltas = lambda messages: [
        {"reasoning_content": "They want a number. "},
        "<thi",
        "nk>Three plus four.</think>Seven.",
    ]
    key = reasoning_server.cli("apikey", "create")
    body = {"username": "ravi", "message": "3+4?"}
    status, got = await post_chat(reasoning_server, body, authorization=f"Bearer {key}")
    assert status == 200
    assert "".join(e["data"] for e in got if e["type"] == "plain") == "Seven."
    (complete,) = [e for e in got if e["type"] == "complete"]
    assert complete["data"] == "Seven." and "reasoning" not in complete
    wire = json.dumps(got)
    assert "Three plus" not in wire and "want a number" not in wire
    session_id = got[0]["session_id"]
    async with httpx.AsyncClient(timeout=30) as http:
        stored = await http.get(
            f"{reasoning_server.http}/api/v1/chat/sessions/{session_id}/messages",
            params={"username": "ravi"},
            headers={"authorization": f"Bearer {key}"},
        )
    assert [(m["role"], m["content"]) for m in stored.json()["messages"]] == [
        ("user", "3+4?"),
        ("assistant", "Seven."),
    ]
    llm_stub.deltas = lambda messages: ["Yes."]
    body = {"username": "ravi", "session_id": session_id, "message": "Sure?"}
    status, _ = await post_chat(reasoning_server, body, authorization=f"Bearer {key}")
    assert status == 200
    sent = llm_stub.chat_requests[-1]["messages"]
    assert {"role": "assistant", "content": "Seven."} in sent
    assert "Three plus" not in json.dumps(sent)


async def test_realtime_audio_says_and_transcribes_the_answer_alone(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    """A spoken Realtime reply: its transcript is the answer's text (markdown kept, as the text
    frames keep it), its voice says it plainly, and the reasoning is in neither, nor in the
    history the model is sent next."""
    key = reasoning_server.cli("apikey", "create")
    client = openai.AsyncOpenAI(api_key=key, base_url=f"{reasoning_server.http}/v1")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "?"}]}
    async with client.realtime.connect(model="live-test") as conn:
        llm_stub.deltas = lambda messages: [
            {"reasoning_content": "Think of Paris facts."},
            "<think>More thoughts.</think>**Paris** has 2,100,000 people.",
            " See https://en.wikipedia.org/wiki/Paris now.\n```\ncode()\n```\n",
        ]
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        got = await realtime_until(conn, "response.done")
        assert got[-1].response.status == "completed"
        transcript = "".join(
            e.delta for e in got if e.type == "response.output_audio_transcript.delta"
        )
        assert transcript.startswith("**Paris** has 2,100,000 people.")
        assert any(e.type == "response.output_audio.delta" for e in got)
        wire = json.dumps([e.model_dump() for e in got])
        assert "Paris facts" not in wire and "More thoughts" not in wire
        said = [r["input"] for r in llm_stub.speech_requests][-2:]
        assert said == [
            "Paris has two million one hundred thousand people.",
            "See en dot wikipedia dot org now.",
        ]
        llm_stub.deltas = lambda messages: ["Good."]
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        await realtime_until(conn, "response.done")
    sent = json.dumps(llm_stub.chat_requests[-1]["messages"])
    assert "Paris facts" not in sent and "More thoughts" not in sent
    assert "2,100,000 people" in sent


async def test_each_socket_chooses_whether_it_sees_the_reasoning(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    """`reasoning=1` on a socket asks for the thinking (the server's default is off); chat mode
    on the same socket shows it AstrBot's way; `reasoning` other than 0 or 1 is refused."""
    llm_stub.deltas = lambda messages: ["<think>", "Weighing it.", "</think>", "Yes."]
    async with open_live(reasoning_server.live_url() + "&reasoning=1") as ws:
        frames = await text_turn(ws, "Ready?")
    async with open_live(reasoning_server.unified_url() + "&reasoning=1") as ws:
        await send(ws, {"ct": "chat", "t": "send", "session_id": "ask-1", "message": "Ready?"})
        chat = await chat_until_end(ws)
    shown = "".join(f["data"]["text"] for f in frames if f["t"] == "bot_reasoning_chunk")
    assert shown == "Weighing it." and deltas_text(frames) == "Yes."
    (complete,) = [f for f in chat if f["type"] == "complete"]
    assert complete["reasoning"] == "Weighing it."
    async with open_live(reasoning_server.live_url()) as ws:  # the default: not shown
        frames = await text_turn(ws, "Ready?")
    assert "Weighing" not in json.dumps(frames) and deltas_text(frames) == "Yes."
    async with open_socket(reasoning_server.live_url() + "&reasoning=yes") as ws:
        refused = await recv(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert refused["t"] == "error" and refused["code"] == "INVALID_MESSAGE"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_in_chat_mode_each_bound_socket_sees_the_reasoning_only_if_it_asked(
    reasoning_server: ServerProcess, llm_stub: StubOpenAI
) -> None:
    """A chat reply goes to every socket bound to its conversation; its reasoning goes only to
    those opened with `reasoning=1`, whichever socket asked for the reply."""
    llm_stub.deltas = lambda messages: ["<think>", "Weighing it.", "</think>", "Yes."]
    url = reasoning_server.unified_url()
    async with open_live(url + "&reasoning=1") as shows, open_live(url) as hides:
        await send(hides, {"ct": "chat", "t": "send", "session_id": "both-1", "message": "Go?"})
        await chat_until_end(hides)
        for ws in (shows, hides):
            await send(ws, {"ct": "chat", "t": "bind", "session_id": "both-1"})
            while (await recv(ws)).get("type") != "session_bound":
                pass
        for sender, message_id in ((hides, "from-hides"), (shows, "from-shows")):
            ask = {"ct": "chat", "t": "send", "session_id": "both-1", "message_id": message_id}
            await send(sender, {**ask, "message": "Ready?"})
            seen, unseen = await asyncio.gather(
                chat_until_end(shows, message_id), chat_until_end(hides, message_id)
            )
            thinking = [f for f in seen if f.get("chain_type") == "reasoning"]
            assert "".join(f["data"] for f in thinking) == "Weighing it."
            (complete,) = [f for f in seen if f["type"] == "complete"]
            assert complete["reasoning"] == "Weighing it." and complete["data"] == "Yes."
            assert "Weighing" not in json.dumps(unseen)
            (complete,) = [f for f in unseen if f["type"] == "complete"]
            assert complete["data"] == "Yes." and not complete.get("reasoning")


async def test_the_default_prompt_asks_for_plain_spoken_answers(
    server_factory: Any, stub: StubOpenAI, llm_stub: StubOpenAI
) -> None:
    """With no `LIVE_SYSTEM_PROMPT` the model is asked for short spoken answers with no
    markdown, in the user's language (the operator's own prompt replaces it: every other test
    server here runs with one)."""
    settings = {k: v for k, v in stub_llm(stub).items() if k != "LIVE_SYSTEM_PROMPT"}
    server: ServerProcess = server_factory(**settings)
    llm_stub.deltas = lambda messages: ["Hello."]
    async with open_live(server.live_url()) as ws:
        await text_turn(ws, "Hi")
    system = llm_stub.chat_requests[-1]["messages"][0]
    assert system["role"] == "system"
    for asked in ("spoken", "short", "without markdown", "language the user speaks"):
        assert asked in system["content"]
