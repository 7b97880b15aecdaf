"""The HTTP API with real HTTP clients: SSE chat, stored sessions, OpenAI-compatible completions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests.client import open_live, post_chat, recv, send, sse_events
from tests.conftest import ServerProcess
from tests.stubs import DEFAULT_REPLY


@pytest.fixture(scope="module")
def key(echo_server: ServerProcess) -> str:
    return echo_server.cli("apikey", "create", "--name", "http-tests")


async def test_chat_streams_deltas_then_the_saved_id(echo_server: ServerProcess, key: str):
    status, events = await post_chat(
        echo_server,
        {"username": "rita", "message": [{"type": "plain", "text": "Hi over HTTP"}]},
        authorization=f"Bearer {key}",
    )
    assert status == 200
    first, rest = events[0], events[1:]
    assert first["type"] == "session_id" and first["session_id"] and first["message_id"]
    kinds = [e["type"] for e in rest]
    assert kinds[-4:] == ["agent_stats", "user_message_saved", "message_saved", "end"]
    assert kinds[0] == "run_started" and kinds[-5] == "complete"
    assert set(kinds[1:-5]) == {"plain"} and len(kinds) > 7
    assert "Hi over HTTP" in "".join(e["data"] for e in rest if e["type"] == "plain")
    saved = rest[-2]["data"]
    assert rest[-1]["saved_message_id"] == saved["id"]
    stats = rest[-4]["data"]
    assert stats["finish_reason"] == "stop" and stats["usage"]["completion_tokens"] > 5

    # The session was created for rita and continues with its id.
    session_id = first["session_id"]
    status, events = await post_chat(
        echo_server,
        {"username": "rita", "session_id": session_id, "message": "second"},
        **{"x-api-key": key},
    )
    assert status == 200 and events[0]["session_id"] == session_id
    assert "message number 2" in "".join(e["data"] for e in events if e["type"] == "plain")

    async with httpx.AsyncClient(timeout=30) as http:
        listed = await http.get(
            f"{echo_server.http}/api/v1/chat/sessions",
            params={"username": "rita", "page": 1, "page_size": 10},
            headers={"authorization": f"Bearer {key}"},
        )
        messages = await http.get(
            f"{echo_server.http}/api/v1/chat/sessions/{session_id}/messages",
            params={"username": "rita", "api_key": key},
        )
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 1 and body["page"] == 1 and body["page_size"] == 10
    assert body["sessions"][0]["session_id"] == session_id
    assert body["sessions"][0]["title"] == "Hi over HTTP"
    assert body["sessions"][0]["message_count"] == 4
    stored = messages.json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] * 2
    assert stored[1]["id"] == saved["id"] and stored[1]["input_type"] == "http"
    assert stored[0]["content"] == "Hi over HTTP"


async def test_sessions_are_paged_most_recent_first(echo_server: ServerProcess):
    token = echo_server.token("sam")
    for n in range(3):
        status, _ = await post_chat(
            echo_server,
            {"session_id": f"sam-{n}", "message": f"n{n}"},
            authorization=f"Bearer {token}",
        )
        assert status == 200
    pages = []
    async with httpx.AsyncClient(timeout=30) as http:
        for page in (1, 2):
            r = await http.get(
                f"{echo_server.http}/api/v1/chat/sessions",
                params={"page": page, "page_size": 2, "token": token},
            )
            pages.append(r.json())
    assert pages[0]["total"] == 3
    ids = [s["session_id"] for p in pages for s in p["sessions"]]
    assert ids == ["sam-2", "sam-1", "sam-0"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"username": "u", "message": "x"}, {}, 401, "UNAUTHORIZED"),
        (
            {"username": "u", "message": "x"},
            {"authorization": "Bearer lsk_nope"},
            401,
            "UNAUTHORIZED",
        ),
        ({"message": "x"}, {"key": True}, 400, "BAD_USER"),
        ({"username": "u"}, {"key": True}, 400, "INVALID_MESSAGE_FORMAT"),
        ({"username": "u", "message": [{"type": "video"}]}, {"key": True}, 400, "UNSUPPORTED"),
        ({"username": "u", "message": "x" * 5000}, {"key": True}, 413, "LIMIT_EXCEEDED"),
        ({"username": "other", "message": "x"}, {"jwt": True}, 403, "FORBIDDEN"),
    ],
)
async def test_chat_errors_are_json_with_a_code(
    echo_server: ServerProcess, key: str, body: Any, headers: Any, status: int, code: str
):
    if headers.pop("key", False):
        headers["authorization"] = f"Bearer {key}"
    if headers.pop("jwt", False):
        headers["authorization"] = f"Bearer {echo_server.token('tom')}"
    got_status, got = await post_chat(echo_server, body, **headers)
    assert got_status == status
    assert got["error"]["code"] == code and got["error"]["message"]


async def test_chat_into_someone_elses_session_is_refused(echo_server: ServerProcess, key: str):
    status, _ = await post_chat(
        echo_server,
        {"username": "uma", "session_id": "uma-1", "message": "mine"},
        **{"x-api-key": key},
    )
    assert status == 200
    status, body = await post_chat(
        echo_server,
        {"username": "vic", "session_id": "uma-1", "message": "yours?"},
        **{"x-api-key": key},
    )
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{echo_server.http}/api/v1/chat/sessions/uma-1/messages",
            params={"username": "vic", "api_key": key},
        )
    assert r.status_code == 404


async def test_http_reply_reaches_sockets_bound_to_its_session(
    echo_server: ServerProcess, key: str
):
    token = echo_server.token("wes")
    status, _ = await post_chat(
        echo_server, {"session_id": "wes-desk", "message": "hello"}, authorization=f"Bearer {token}"
    )
    assert status == 200
    async with open_live(f"{echo_server.ws}/api/unified_chat/ws?token={token}") as ws:
        await send(ws, {"ct": "chat", "t": "bind", "session_id": "wes-desk"})
        assert (await recv(ws))["type"] == "session_bound"
        status, events = await post_chat(
            echo_server,
            {"session_id": "wes-desk", "message": "from my phone"},
            authorization=f"Bearer {token}",
        )
        assert status == 200
        heard = []
        async with asyncio.timeout(10):
            while not heard or heard[-1]["type"] != "end":
                heard.append(await recv(ws))
    assert heard == events[1:]


async def test_a_caller_that_hangs_up_leaves_an_interrupted_saved_reply(
    server_factory: Any,
):
    server = server_factory(LIVE_ECHO_DELAY_MS="100")
    token = server.token("xia")
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream(
            "POST",
            f"{server.http}/api/v1/chat",
            json={"session_id": "xia-1", "message": "a long one " * 10},
            headers={"authorization": f"Bearer {token}"},
        ) as r:
            async for line in r.aiter_lines():
                if '"plain"' in line:
                    break  # hang up after the first delta
        async with asyncio.timeout(10):
            while True:
                got = await http.get(
                    f"{server.http}/api/v1/chat/sessions/xia-1/messages", params={"token": token}
                )
                if got.status_code == 200 and len(got.json()["messages"]) == 2:
                    break
                await asyncio.sleep(0.05)
    reply = got.json()["messages"][1]
    assert reply["interrupted"] is True
    assert "message number" not in reply["content"]


async def test_openai_client_streams_and_completes(echo_server: ServerProcess, key: str):
    client = openai.AsyncOpenAI(base_url=f"{echo_server.http}/v1", api_key=key, max_retries=0)
    async with client:
        completion = await client.chat.completions.create(
            model="anything",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "What is up?"}]},
            ],
        )
        stream = await client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "stream it"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.model == "echo"
    assert completion.choices[0].finish_reason == "stop"
    assert text is not None and "What is up?" in text and "message number 2" in text
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 5 and "stream it" in streamed
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}


async def test_openai_client_sees_errors(echo_server: ServerProcess, key: str):
    bad = openai.AsyncOpenAI(base_url=f"{echo_server.http}/v1", api_key="lsk_wrong", max_retries=0)
    async with bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
    good = openai.AsyncOpenAI(base_url=f"{echo_server.http}/v1", api_key=key, max_retries=0)
    async with good:
        with pytest.raises(openai.BadRequestError) as caught:
            await good.chat.completions.create(model="m", messages=[])
    assert "messages" in str(caught.value)


async def test_openai_client_sees_a_model_failure_mid_stream(
    server_factory: Any, stub: Any, llm_stub: Any
):
    server = server_factory(
        LIVE_LLM="openai", LIVE_LLM_BASE_URL=stub.base_url, LIVE_LLM_API_KEY="sk-test"
    )
    key = server.cli("apikey", "create")
    client = openai.AsyncOpenAI(base_url=f"{server.http}/v1", api_key=key, max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "FAIL_MIDSTREAM please"}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "FAIL_HTTP"}]
            )
    assert caught.value.status_code == 502


async def test_sampling_settings_reach_the_model(stub_server: ServerProcess, llm_stub: Any):
    key = stub_server.cli("apikey", "create")
    client = openai.AsyncOpenAI(base_url=f"{stub_server.http}/v1", api_key=key, max_retries=0)
    async with client:
        await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            temperature=0.2,
            top_p=0.9,
            max_tokens=50,
            stop="\n\n",
            presence_penalty=0.5,
            frequency_penalty=-0.5,
            seed=7,
        )
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "again"}], stream=True
        )
        _ = [chunk async for chunk in stream]
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "new"}], max_completion_tokens=9
        )
    tuned, plain, newer = llm_stub.chat_requests[-3:]
    assert newer["max_completion_tokens"] == 9 and "max_tokens" not in newer
    assert {k: tuned[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "seed": 7,
    }
    assert tuned["presence_penalty"] == 0.5 and tuned["frequency_penalty"] == -0.5
    # Nothing the caller did not set is sent: the model's own defaults stay.
    assert not {"temperature", "top_p", "max_tokens", "stop", "seed"} & set(plain)


async def test_echo_honours_max_tokens(echo_server: ServerProcess, key: str):
    client = openai.AsyncOpenAI(base_url=f"{echo_server.http}/v1", api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "count my words please"}]
    async with client:
        whole = await client.chat.completions.create(model="m", messages=messages)
        short = await client.chat.completions.create(
            model="m", messages=messages, max_completion_tokens=3
        )
    full, cut = whole.choices[0].message.content or "", short.choices[0].message.content or ""
    assert full.startswith(cut) and len(cut.split()) == 3 < len(full.split())


async def test_echo_says_why_it_stopped_and_counts_tokens(echo_server: ServerProcess, key: str):
    client = openai.AsyncOpenAI(base_url=f"{echo_server.http}/v1", api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "count my words please"}]
    async with client:
        whole = await client.chat.completions.create(model="m", messages=messages)
        cut = await client.chat.completions.create(model="m", messages=messages, max_tokens=3)
        longer: Any = [{"role": "user", "content": "count my words please, all five"}]
        more = await client.chat.completions.create(model="m", messages=longer, max_tokens=1)
        stream = await client.chat.completions.create(
            model="m",
            messages=messages,
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
        *chunks, counted = [chunk async for chunk in stream]
    assert whole.choices[0].finish_reason == "stop" and cut.choices[0].finish_reason == "length"
    assert whole.usage is not None and cut.usage is not None and more.usage is not None
    # The prompt counts the server's system prompt too; two more words, two more tokens.
    assert whole.usage.prompt_tokens == cut.usage.prompt_tokens == more.usage.prompt_tokens - 2
    assert cut.usage.completion_tokens == 3 < whole.usage.completion_tokens
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    # Streamed: "usage" is null until a last chunk that has no choices.
    assert counted.choices == [] and counted.usage is not None
    assert counted.usage.completion_tokens == 3
    assert all(chunk.usage is None for chunk in chunks)
    assert sum(1 for chunk in chunks if chunk.choices[0].delta.content) == 3
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_a_stream_not_asking_for_usage_gets_none(echo_server: ServerProcess, key: str):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url, headers = f"{echo_server.http}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", url, json=body, headers=headers) as r,
    ):
        *chunks, done = await sse_events(r)
    assert done == "[DONE]"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in chunk for chunk in chunks)


async def test_the_models_finish_reason_and_token_count_are_passed_on(
    stub_server: ServerProcess, llm_stub: Any
):
    key = stub_server.cli("apikey", "create")
    client = openai.AsyncOpenAI(base_url=f"{stub_server.http}/v1", api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "tell me everything"}]
    async with client:
        cut = await client.chat.completions.create(model="m", messages=messages, max_tokens=4)
        stream = await client.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "The first sentence is"
    counted = chunks[-1].usage
    assert cut.usage is not None and counted is not None
    assert [
        (u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in (cut.usage, counted)
    ] == [(u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]) for u in llm_stub.usages]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(r["stream_options"] == {"include_usage": True} for r in llm_stub.chat_requests)


async def test_a_model_server_refusing_stream_options_still_answers(
    server_factory: Any, stub: Any, llm_stub: Any
):
    llm_stub.refuses_stream_options = True
    server = server_factory(
        LIVE_LLM="openai", LIVE_LLM_BASE_URL=stub.base_url, LIVE_LLM_API_KEY="sk-test"
    )
    key = server.cli("apikey", "create")
    client = openai.AsyncOpenAI(base_url=f"{server.http}/v1", api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    async with client:
        first = await client.chat.completions.create(model="m", messages=messages)
        second = await client.chat.completions.create(model="m", messages=messages)
    assert first.choices[0].message.content == second.choices[0].message.content == DEFAULT_REPLY
    assert first.usage is None and first.choices[0].finish_reason == "stop"
    # Asked once with the option and once more without; after that, never with it.
    assert ["stream_options" in r for r in llm_stub.chat_requests] == [True, False, False]
    assert "refused stream_options" in server.logs()


@pytest.mark.parametrize(
    ("extra", "status", "fragment"),
    [
        ({"temperature": 5}, 400, "temperature"),
        ({"top_p": "high"}, 400, "top_p"),
        ({"max_tokens": 0}, 400, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"seed": 1.5}, 400, "seed"),
        ({"n": 2}, 400, "UNSUPPORTED"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "UNSUPPORTED"),
        ({"stream_options": {"include_usage": True}}, 400, "only allowed when"),
        ({"stream": True, "stream_options": []}, 400, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, 400, "include_usage"),
    ],
)
async def test_sampling_settings_are_checked(
    echo_server: ServerProcess, key: str, extra: dict[str, Any], status: int, fragment: str
):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            f"{echo_server.http}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code == status
    assert fragment in json.dumps(r.json()["error"])
