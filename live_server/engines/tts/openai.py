"""OpenAI-compatible `/v1/audio/speech` through the `openai` SDK."""

from __future__ import annotations

import asyncio

from live_server.audio.convert import Audio, decode
from live_server.engines.openai_client import openai_client
from live_server.errors import TTSError

DEFAULT_VOICE = "alloy"
TIMEOUT_S = 30.0  # for the whole request, its retry included


class OpenAITTS:
    def __init__(
        self, *, base_url: str | None, api_key: str | None, model: str, voice: str | None
    ) -> None:
        self._client = openai_client(base_url=base_url, api_key=api_key, timeout_s=TIMEOUT_S)
        self._model = model
        self._voice = voice or DEFAULT_VOICE

    @property
    def name(self) -> str:
        return self._model

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        try:
            async with (
                asyncio.timeout(TIMEOUT_S),
                self._client.audio.speech.with_streaming_response.create(
                    model=self._model, voice=self._voice, input=text, response_format="wav"
                ) as response,
            ):
                data = await response.read()
        except TimeoutError:
            raise TTSError(f"the speech took over {TIMEOUT_S:g} s") from None
        except Exception as exc:
            raise TTSError(f"the speech request failed: {exc}") from exc
        try:
            # Re-encoding also repairs the open-ended WAV headers some servers stream.
            return await asyncio.to_thread(decode, data)
        except ValueError as exc:
            raise TTSError(f"the speech server sent audio that cannot be decoded: {exc}") from exc

    async def aclose(self) -> None:
        await self._client.close()
