"""Any OpenAI-compatible chat-completions endpoint (OpenAI, DeepSeek, DashScope, vLLM, Ollama)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from live_server.engines import ChatMessage, Outcome, Reasoning, Sampling, Usage
from live_server.engines.openai_client import openai_client
from live_server.engines.reasoning import ThinkFilter
from live_server.errors import LLMError

log = logging.getLogger(__name__)

_COUNT_TOKENS = {"include_usage": True}


class OpenAILLM:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        timeout_s: float,
        reasoning_effort: str | None = None,
        extra_body: dict[str, Any] | None = None,
        thinks_first: bool = False,
    ) -> None:
        try:
            self._client = openai_client(base_url=base_url, api_key=api_key, timeout_s=timeout_s)
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise LLMError(
                "LIVE_LLM=openai needs the 'openai' package: pip install openai"
            ) from exc
        self._model = model
        self._timeout_s = timeout_s
        # How the model is asked about its reasoning (`LIVE_LLM_REASONING_EFFORT`,
        # `LIVE_LLM_EXTRA_BODY`), and whether its replies start inside a `<think>` block.
        self._reasoning: dict[str, Any] = {}
        if reasoning_effort is not None:
            self._reasoning["reasoning_effort"] = reasoning_effort
        if extra_body:
            self._reasoning["extra_body"] = extra_body
        self._thinks_first = thinks_first
        # Whether the server takes `stream_options` (how a stream asks for its token count):
        # None until a request has shown it.
        self._takes_stream_options: bool | None = None

    @property
    def name(self) -> str:
        return self._model

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncGenerator[str, None]:
        # The SDK takes milliseconds to build a request before its first await: let the caller's
        # frames already queued (a turn's user_msg) go out first.
        await asyncio.sleep(0)
        request: dict[str, Any] = {"model": self._model, "messages": list(messages)}
        request.update(self._reasoning)
        if sampling is not None:
            request.update(sampling.params())
        # The template opened a `<think>` block: until it closes, the text is reasoning.
        opened = ThinkFilter(inside=True) if self._thinks_first else None
        stream = await self._open(request, count_tokens=outcome is not None)
        try:
            async for chunk in stream:
                if outcome is not None and chunk.usage is not None:
                    outcome.usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if outcome is not None and choice.finish_reason:
                    outcome.finish_reason = choice.finish_reason
                extra = choice.delta.model_extra or {}
                reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    yield Reasoning(reasoning)
                if choice.delta.content:
                    if opened is None:
                        yield choice.delta.content
                    else:
                        # The reasoning as `Reasoning`; the reply's own later `<think>`
                        # blocks are kept apart downstream.
                        for part in opened.feed(choice.delta.content).deltas():
                            yield part
            if opened is not None:
                for part in opened.flush().deltas():
                    yield part
        except Exception as exc:
            raise LLMError(f"the model stream failed: {exc}") from exc
        finally:
            # Closing the HTTP response is what stops generation on the provider's side.
            await stream.close()

    async def _open(self, request: dict[str, Any], *, count_tokens: bool) -> Any:
        """Start the stream; asked to count tokens, ask the server for the count too. A server
        that refuses the option is asked again without it, and from then on never with it."""

        create: Any = self._client.chat.completions.create  # one call, two shapes
        ask = count_tokens and self._takes_stream_options is not False
        options = {"stream_options": _COUNT_TOKENS} if ask else {}
        try:
            async with asyncio.timeout(self._timeout_s):  # the whole budget, retries included
                return await self._create(create, request, options, ask)
        except TimeoutError:
            raise LLMError(
                f"the model did not start answering within {self._timeout_s:g} s "
                "(LIVE_LLM_TIMEOUT_S)"
            ) from None

    async def _create(
        self, create: Any, request: dict[str, Any], options: dict[str, Any], ask: bool
    ) -> Any:
        from openai import APIStatusError

        try:
            try:
                stream = await create(**request, stream=True, **options)
            except APIStatusError as exc:
                if not ask or self._takes_stream_options or exc.status_code not in (400, 422):
                    raise
                # Refused by a server not known to take the option: try once without it.
                stream = await create(**request, stream=True)
                self._takes_stream_options = False  # fine without it: it was the option
                log.warning(
                    "the model server refused stream_options (%s): token usage will not be "
                    "reported",
                    exc.message,
                )
                return stream
        except Exception as exc:
            raise LLMError(f"the model request failed: {exc}") from exc
        if ask:
            self._takes_stream_options = True
        return stream

    async def aclose(self) -> None:
        await self._client.close()
