"""The one way engines build an `openai` client for an OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import AsyncOpenAI


def openai_client(*, base_url: str | None, api_key: str | None, timeout_s: float) -> AsyncOpenAI:
    """A client with one retry. Local servers (Ollama, vLLM, faster-whisper) often take no
    key, but the SDK insists on one, so a placeholder stands in.

    The SDK's timeout holds for each attempt, so a request that hangs would take it twice:
    callers bound the whole request, retry included, with `asyncio.timeout(timeout_s)`."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=1
    )
