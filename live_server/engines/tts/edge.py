"""Microsoft Edge's online neural voices through `edge-tts` (needs internet, no key).

The service sends MP3; each sentence is decoded and handed on as WAV. When the service cannot be
reached, speech degrades to the fallback engine (the embedded one) with a logged warning rather
than failing the turn, and the service is tried again after `retry_after_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from live_server.audio.convert import Audio, decode
from live_server.engines import TTS
from live_server.errors import TTSError

log = logging.getLogger(__name__)

DEFAULT_VOICE = "en-US-AriaNeural"
DEFAULT_CJK_VOICE = "zh-CN-XiaoxiaoNeural"


class Communicate(Protocol):
    """The part of `edge_tts.Communicate` used here."""

    def stream(self) -> AsyncIterator[Mapping[str, Any]]: ...


CommunicateFactory = Callable[[str, str], Communicate]


def _edge_communicate(text: str, voice: str) -> Communicate:
    import edge_tts

    communicate: Communicate = edge_tts.Communicate(text, voice)
    return communicate


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
    try:
        import aiohttp

        errors += (aiohttp.ClientError,)
    except ImportError:  # pragma: no cover - edge-tts depends on aiohttp
        pass
    return errors


class EdgeTTS:
    def __init__(
        self,
        *,
        voice: str | None,
        fallback: TTS,
        communicate: CommunicateFactory = _edge_communicate,
        retry_after_s: float = 60.0,
    ) -> None:
        self._voice = voice
        self._fallback = fallback
        self._communicate = communicate
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
        self._unreachable = _unreachable_errors()

    @property
    def name(self) -> str:
        return "edge"

    def voice_for(self, text: str) -> str:
        if self._voice:
            return self._voice
        from live_server.text import is_cjk

        return DEFAULT_CJK_VOICE if any(is_cjk(ch) for ch in text) else DEFAULT_VOICE

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        if time.monotonic() < self._down_until:
            return await self._fallback.synthesize(text, due=due)
        mp3 = bytearray()
        try:
            async for chunk in self._communicate(text, self.voice_for(text)).stream():
                if chunk.get("type") == "audio":
                    mp3 += chunk["data"]
        except self._unreachable as exc:
            self._down_until = time.monotonic() + self._retry_after_s
            log.warning(
                "edge-tts is unreachable (%s: %s); speaking with the embedded %s engine, "
                "retrying edge in %.0f s",
                type(exc).__name__,
                exc,
                self._fallback.name,
                self._retry_after_s,
            )
            return await self._fallback.synthesize(text, due=due)
        except Exception as exc:
            raise TTSError(f"edge-tts failed: {exc}") from exc
        if not mp3:
            raise TTSError("edge-tts returned no audio")
        try:
            return await asyncio.to_thread(decode, bytes(mp3))
        except ValueError as exc:
            raise TTSError(f"edge-tts sent audio that cannot be decoded: {exc}") from exc

    async def aclose(self) -> None:
        await self._fallback.aclose()
