"""Any OpenAI-compatible chat-completions endpoint (OpenAI, DeepSeek, DashScope, vLLM, Ollama)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from live_server.errors import LLMError
from live_server.providers import ChatMessage, Sampling
from live_server.providers.openai_client import openai_client


class OpenAILLM:
    def __init__(
        self, *, base_url: str | None, api_key: str | None, model: str, timeout_s: float
    ) -> None:
        try:
            self._client = openai_client(base_url=base_url, api_key=api_key, timeout_s=timeout_s)
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise LLMError(
                "LIVE_LLM=openai needs the 'openai' package: pip install openai"
            ) from exc
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling | None = None
    ) -> AsyncGenerator[str, None]:
        extra = sampling.params() if sampling is not None else {}
        try:
            stream: Any = await self._client.chat.completions.create(
                model=self._model, messages=cast(Any, list(messages)), stream=True, **extra
            )
        except Exception as exc:
            raise LLMError(f"the model request failed: {exc}") from exc
        try:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content
                if delta:
                    yield delta
        except Exception as exc:
            raise LLMError(f"the model stream failed: {exc}") from exc
        finally:
            # Closing the HTTP response is what stops generation on the provider's side.
            await stream.close()

    async def aclose(self) -> None:
        await self._client.close()
