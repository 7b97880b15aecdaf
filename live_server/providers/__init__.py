"""Engines behind small protocols, built from settings by name.

One module per engine under `llm/` and `tts/`. Engines are imported only when chosen, so an
engine's optional dependencies cost nothing when it is not used.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Literal, Protocol, TypedDict

from live_server.audio import Audio
from live_server.settings import Settings

log = logging.getLogger(__name__)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class LLM(Protocol):
    """A streaming chat model."""

    @property
    def name(self) -> str: ...

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas. Raises `LLMError`; closing the iterator stops it."""
        ...

    async def aclose(self) -> None: ...


class TTS(Protocol):
    """A speech synthesizer for one sentence at a time."""

    @property
    def name(self) -> str: ...

    async def synthesize(self, text: str) -> Audio:
        """Speak `text`. Raises `TTSError`; cancelling it stops the work."""
        ...

    async def aclose(self) -> None: ...


def _echo(settings: Settings) -> LLM:
    from live_server.providers.llm.echo import EchoLLM

    return EchoLLM(delay_ms=settings.echo_delay_ms)


def _openai_llm(settings: Settings) -> LLM:
    from live_server.providers.llm.openai import OpenAILLM

    return OpenAILLM(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )


def _espeak(settings: Settings) -> TTS:
    from live_server.providers.tts.espeak import EspeakTTS

    return EspeakTTS(voice=settings.tts_voice)


def _edge(settings: Settings) -> TTS:
    from live_server.providers.tts.edge import EdgeTTS
    from live_server.providers.tts.espeak import EspeakTTS

    return EdgeTTS(voice=settings.tts_voice, fallback=EspeakTTS(voice=None))


def _openai_tts(settings: Settings) -> TTS:
    from live_server.providers.tts.openai import OpenAITTS

    return OpenAITTS(
        base_url=settings.tts_base_url,
        api_key=settings.tts_api_key,
        model=settings.tts_model,
        voice=settings.tts_voice,
    )


LLM_FACTORIES: dict[str, Callable[[Settings], LLM]] = {"echo": _echo, "openai": _openai_llm}
TTS_FACTORIES: dict[str, Callable[[Settings], TTS]] = {
    "espeak": _espeak,
    "edge": _edge,
    "openai": _openai_tts,
}


def build_llm(settings: Settings) -> LLM:
    return LLM_FACTORIES[settings.llm](settings)


def build_tts(settings: Settings) -> TTS | None:
    """The configured TTS engine, or None for `LIVE_TTS=none` (text-only replies)."""
    if settings.tts == "none":
        return None
    return TTS_FACTORIES[settings.tts](settings)
