"""`POST /v1/chat/completions`: the configured LLM behind the OpenAI chat-completions API.

Any OpenAI client, or an RTC platform's custom-LLM callback, can use the server as its model.
The caller sends the whole conversation each time, so nothing is stored here. Sampling fields
(`temperature`, `max_tokens`, ...) are checked and passed to the model. Streaming
replies are `chat.completion.chunk` events ending with `data: [DONE]`; a model failure in mid
stream is sent as an `{"error": ...}` event, which OpenAI clients raise as an API error.
`finish_reason` is the model's own ("length" when `max_tokens` cut the reply), and `usage` is
the model's token count, where it gives one: always in a whole reply, and in a stream's last
chunk when the caller asks with `stream_options: {"include_usage": true}`, as OpenAI does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from live_server.engines import ChatMessage, Outcome, Sampling
from live_server.engines.reasoning import Split, ThinkFilter
from live_server.errors import ErrorCode, LiveError, LLMError, ProtocolError
from live_server.web.chat_api import (
    SSE_HEADERS,
    JSONResponse,
    check_credential,
    error_response,
    json_body,
    sse,
)
from live_server.web.state import app_state

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def parse_messages(raw: object, *, max_chars: int) -> list[ChatMessage]:
    """The request's `messages` as plain-text chat messages, or `ProtocolError`."""
    if not isinstance(raw, list) or not raw:
        raise ProtocolError('"messages" must be a non-empty list')
    messages: list[ChatMessage] = []
    total = 0
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise ProtocolError(
                f"messages[{i}] needs a role of system, developer, user or assistant"
            )
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise ProtocolError(
                        f"messages[{i}]: only text content parts are supported",
                        code=ErrorCode.UNSUPPORTED,
                    )
                texts.append(str(part.get("text", "")))
            content = "".join(texts)
        if content is None and m["role"] == "assistant":
            content = ""
        if not isinstance(content, str):
            raise ProtocolError(f"messages[{i}].content must be a string or text parts")
        total += len(content)
        role = cast(Any, _ROLES[m["role"]])
        messages.append({"role": role, "content": content})
    if total > max_chars:
        raise ProtocolError(
            f"the messages hold {total} characters; the limit is {max_chars}",
            code=ErrorCode.LIMIT_EXCEEDED,
        )
    return messages


def parse_sampling(body: dict[str, Any]) -> Sampling:
    """The request's generation settings, checked; what we cannot honour is `UNSUPPORTED`
    rather than silently ignored."""
    n = body.get("n")
    if n not in (None, 1):
        raise ProtocolError('"n" must be 1: one reply per request', code=ErrorCode.UNSUPPORTED)
    for name in ("tools", "functions"):
        if body.get(name):
            raise ProtocolError(
                f'"{name}" is not supported: the model answers in text only',
                code=ErrorCode.UNSUPPORTED,
            )
    limits = {name: body.get(name) for name in ("max_tokens", "max_completion_tokens")}
    for name, limit in limits.items():
        if limit is not None and (not _is_int(limit) or limit < 1):
            raise ProtocolError(f'"{name}" must be a positive integer')
    if limits["max_completion_tokens"] is not None:
        limits["max_tokens"] = None  # the newer name wins
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (
        not isinstance(stop, list)
        or len(stop) > 4
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise ProtocolError('"stop" must be a string or a list of up to 4 strings')
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ProtocolError('"seed" must be an integer')
    return Sampling(
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        max_tokens=limits["max_tokens"],
        max_completion_tokens=limits["max_completion_tokens"],
        stop=tuple(stop) if stop else None,
        presence_penalty=_number(body, "presence_penalty", -2, 2),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2),
        seed=seed,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProtocolError(f'"{name}" must be a number from {low} to {high}')
    return float(value)


async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    settings = state.settings
    try:
        body = await json_body(request, state)
        # Stateless: the caller sends the whole conversation, so no user needs to be named.
        await check_credential(request, state)
        # The history a caller may send is bounded like a conversation's, not like one message.
        messages = parse_messages(body.get("messages"), max_chars=settings.history_max_chars)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ProtocolError('"stream" must be true or false')
        include_usage = parse_stream_options(body.get("stream_options"), stream=stream)
        sampling = parse_sampling(body)
    except LiveError as exc:
        return error_response(exc.code, exc.message)
    if settings.system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    llm = state.engines.llm
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    outcome = Outcome()
    if stream:
        reply = Reply(llm.name, completion_id, created, include_usage)
        events = reply.events(llm.stream(messages, sampling, outcome), outcome)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        async with aclosing(llm.stream(messages, sampling, outcome)) as deltas:
            got = [d async for d in deltas]
    except LLMError as exc:
        return error_response(exc.code, exc.message)
    thinking = ThinkFilter()
    splits = [*map(thinking.take, got), thinking.flush()]
    message = {"role": "assistant", "content": "".join(s.answer for s in splits)}
    if reasoning := "".join(s.reasoning for s in splits):  # apart, as DeepSeek gives it
        message["reasoning_content"] = reasoning
    completion: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": llm.name,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": outcome.finish_reason,
                "logprobs": None,
            }
        ],
    }
    if outcome.usage is not None:
        completion["usage"] = outcome.usage.as_dict()
    return JSONResponse(completion)


def parse_stream_options(raw: object, *, stream: bool) -> bool:
    """Whether a stream's last chunk is to carry the token count."""
    if raw is None:
        return False
    if not stream:
        raise ProtocolError('"stream_options" is only allowed when "stream" is true')
    if not isinstance(raw, dict):
        raise ProtocolError('"stream_options" must be an object')
    include = raw.get("include_usage", False)
    if not isinstance(include, bool):
        raise ProtocolError('"stream_options.include_usage" must be true or false')
    return include


class Reply:
    """One streamed completion as `chat.completion.chunk` events."""

    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        # Asked for usage, OpenAI puts `"usage": null` in every chunk but the last.
        extra = {"usage": usage} if self._include_usage else {}
        return sse({**self._head, "choices": choices, **extra})

    def delta(self, delta: dict[str, str], finish: str | None = None) -> str:
        return self.chunk([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}])

    def _split(self, split: Split) -> list[str]:
        """A delta's reasoning as `reasoning_content` (DeepSeek's field), its answer as content."""
        out = []
        if split.reasoning:
            out.append(self.delta({"reasoning_content": split.reasoning}))
        if split.answer:
            out.append(self.delta({"content": split.answer}))
        return out

    async def events(
        self, deltas: AsyncGenerator[str, None], outcome: Outcome
    ) -> AsyncIterator[str]:
        yield self.delta({"role": "assistant", "content": ""})
        try:
            thinking = ThinkFilter()
            async with aclosing(deltas):
                async for delta in deltas:
                    for chunk in self._split(thinking.take(delta)):
                        yield chunk
            for chunk in self._split(thinking.flush()):
                yield chunk
        except LLMError as exc:
            error = {"message": exc.message, "type": "api_error", "code": exc.code.value}
            yield sse({"error": error})
        else:
            yield self.delta({}, outcome.finish_reason)
            if self._include_usage:
                usage = outcome.usage.as_dict() if outcome.usage is not None else None
                yield self.chunk([], usage=usage)
        yield sse("[DONE]")
