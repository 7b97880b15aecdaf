"""Whisper-compatible `/v1/audio/transcriptions` through the `openai` SDK.

Covers OpenAI, Groq and local faster-whisper servers. The segment is kept in memory as it
arrives and sent as one WAV file (made with soundfile, never written to disk) at `end_speaking`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from live_server.audio.convert import PCM, pcm_to_wav
from live_server.engines.openai_client import openai_client
from live_server.errors import STTError

SAMPLE_RATE = 16000
TIMEOUT_S = 60.0  # for the whole request, its retry included


class OpenAISTT:
    sample_rate = SAMPLE_RATE

    def __init__(
        self, *, base_url: str | None, api_key: str | None, model: str, language: str | None
    ) -> None:
        self._client = openai_client(base_url=base_url, api_key=api_key, timeout_s=TIMEOUT_S)
        self._model = model
        self._language = language

    @property
    def name(self) -> str:
        return self._model

    def start(self, on_partial: Callable[[str], None] | None = None) -> _Recognition:
        return _Recognition(self)

    async def warm_up(self) -> None:
        pass

    async def transcribe(self, samples: PCM) -> str:
        wav = await asyncio.to_thread(pcm_to_wav, samples, SAMPLE_RATE)
        from openai import omit

        try:
            async with asyncio.timeout(TIMEOUT_S):
                result = await self._client.audio.transcriptions.create(
                    model=self._model,
                    file=("speech.wav", wav, "audio/wav"),
                    response_format="json",
                    language=self._language or omit,
                )
        except TimeoutError:
            raise STTError(f"the transcription took over {TIMEOUT_S:g} s") from None
        except Exception as exc:
            raise STTError(f"the transcription request failed: {exc}") from exc
        # The SDK builds its result from whatever JSON came back: anything but a transcript
        # (no "text", or not a string) is the service failing, not the user saying "None".
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise STTError(
                f'the transcription service answered without a "text" string: {_shown(result)}'
            )
        return text.strip()

    async def aclose(self) -> None:
        await self._client.close()


def _shown(result: object) -> str:
    try:
        shown = repr(result.model_dump())  # type: ignore[attr-defined]
    except Exception:
        shown = repr(result)
    return shown[:200]


class _Recognition:
    def __init__(self, engine: OpenAISTT) -> None:
        self._engine = engine
        self._chunks: list[PCM] = []
        self._over = False

    def feed(self, pcm: PCM) -> None:
        if not self._over:
            self._chunks.append(pcm)

    def guess(self, *, urgent: bool) -> None:
        pass  # a remote service is asked once, at the end

    def guessed(self, speech_end: int) -> asyncio.Future[str] | None:
        return None

    async def finish(self, speech_end: int | None = None) -> str:
        if self._over:
            raise STTError("this utterance is already over")
        self._over = True
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return await self._engine.transcribe(samples)

    def cancel(self) -> None:
        self._over = True
        self._chunks = []
