"""Engines behind small protocols, built from settings by name.

One module per engine under `llm/`, `tts/` and `stt/`. Engines are imported only when chosen, so an
engine's optional dependencies cost nothing when it is not used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from live_server.audio.convert import PCM, Audio
from live_server.audio.vad import ScorerPool
from live_server.engines.reasoning import Reasoning as Reasoning  # the type streams carry
from live_server.errors import ConfigError
from live_server.settings import Settings

log = logging.getLogger(__name__)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Sampling:
    """A caller's generation settings (`/v1/chat/completions`); None leaves the model's own."""

    temperature: float | None = None
    top_p: float | None = None
    # Older servers know `max_tokens`, OpenAI's newer models only `max_completion_tokens`:
    # the one the caller used is passed on.
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def params(self) -> dict[str, Any]:
        """The settings that are set, as chat-completions request fields."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if "stop" in out:
            out["stop"] = list(out["stop"])
        return out


@dataclass(frozen=True)
class Usage:
    """Tokens a reply took, as the model counted them."""

    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass
class Outcome:
    """How a streamed reply ended: filled in by the model as it streams, final once the stream
    is exhausted. `finish_reason` is the model's own ("stop", "length" when a token limit cut
    the reply, "content_filter"); `usage` stays None when the model does not count."""

    finish_reason: str = "stop"
    usage: Usage | None = None


class LLM(Protocol):
    """A streaming chat model."""

    @property
    def name(self) -> str: ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas; fill in `outcome`, if given, as they come. Raises
        `LLMError`; closing the iterator stops it."""
        ...

    async def aclose(self) -> None: ...


class TTS(Protocol):
    """A speech synthesizer for one sentence at a time."""

    @property
    def name(self) -> str: ...

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        """Speak `text`. Raises `TTSError`; cancelling it stops the work. `due`: when its audio
        is needed (`time.perf_counter`; None: now), for an engine that orders its work."""
        ...

    async def aclose(self) -> None: ...


class Recognition(Protocol):
    """One utterance being recognised. Audio is fed as it arrives; `finish` returns the text."""

    def feed(self, pcm: PCM) -> None:
        """Hand over samples at the engine's rate. Never blocks: the work happens elsewhere."""
        ...

    def guess(self, *, urgent: bool) -> None:
        """Start recognising what has arrived so far, in the background: the speaker paused
        (`urgent`: this may be the end) or has said more since the last guess. Its result is
        reported as a partial transcript and may serve as the final one. Engines that
        recognise as the audio arrives, or only at the end, ignore it."""
        ...

    def guessed(self, speech_end: int) -> asyncio.Future[str] | None:
        """The guess, done or under way, that covers the speech up to sample `speech_end`: what
        the words so far are at a pause. None when no guess covers it (engines that do not
        guess)."""
        ...

    async def finish(self, speech_end: int | None = None) -> str:
        """The transcript ("" when nothing was recognised). `speech_end` is the sample after
        the last speech the VAD heard: a guess covering it needs no new decode. Raises
        `STTError`."""
        ...

    def cancel(self) -> None:
        """Abandon the utterance and free what it holds. Safe to call more than once."""
        ...


class EndModel(Protocol):
    """A language model asked for its most likely next tokens after a prompt: how the end of
    a turn is judged (`turn_end` writes the prompt and reads the answer)."""

    async def next_tokens(self, prompt: str) -> dict[str, float]:
        """The probabilities of the most likely tokens to follow `prompt`. Raises `LLMError`."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ChatPrefill(Protocol):
    """A chat model that can read a conversation ahead of the request for its reply (one that
    keeps what it read, as an embedded model does): the reply then starts sooner."""

    async def prefill_chat(self, messages: Sequence[ChatMessage]) -> None:
        """Read `messages` as `stream` would, and answer nothing. Raises `LLMError`."""
        ...


class STT(Protocol):
    """A speech recogniser that takes 16-bit mono PCM at `sample_rate`."""

    @property
    def name(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    def start(self, on_partial: Callable[[str], None] | None = None) -> Recognition:
        """A new utterance; `on_partial` hears its partial transcripts, if the engine has them."""
        ...

    async def warm_up(self) -> None:
        """Load models now, at start-up, rather than on the first utterance."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Engines:
    """The engines a session works with, built once at start-up and shared by every session."""

    llm: LLM
    tts: TTS | None
    stt: STT | None = None
    vad: ScorerPool | None = None  # with `stt`: the server's VAD models
    # With `stt`: the model that judges how finished the words are at a pause (`turn_end`).
    end_model: EndModel | None = None
    # The language replies are spoken in (`LIVE_STT_LANGUAGE`), whose rules say numbers and
    # the like (`speech_text`); None: by each sentence's script.
    language: str | None = None


def _echo(settings: Settings) -> LLM:
    from live_server.engines.llm.echo import EchoLLM

    return EchoLLM(delay_ms=settings.echo_delay_ms)


def _openai_llm(settings: Settings) -> LLM:
    from live_server.engines.llm.openai import OpenAILLM

    return OpenAILLM(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
        reasoning_effort=settings.llm_reasoning_effort,
        extra_body=settings.llm_extra_body,
        thinks_first=settings.llm_thinks_first,
    )


def _local_llm(settings: Settings) -> LLM:
    from live_server.engines.llm.local import LocalLLM

    return LocalLLM(
        model=settings.local_model,
        threads=settings.local_threads,
        context=settings.local_context,
        slots=settings.local_slots,
        reasoning=settings.local_reasoning,
        reply_chars=settings.local_reply_chars,
    )


def _piper(settings: Settings) -> TTS:
    from live_server.engines.tts.espeak import EspeakTTS
    from live_server.engines.tts.piper import PiperTTS, load_voice

    try:
        voice = load_voice(settings.piper_voice)
    except ConfigError:
        if settings.piper_voice is not None:
            raise  # a voice the operator chose and that cannot load is a mistake to report
        log.warning("Piper could not be loaded; speaking with espeak instead", exc_info=True)
        return EspeakTTS(voice=settings.tts_voice)
    return PiperTTS(voice)


def _espeak(settings: Settings) -> TTS:
    from live_server.engines.tts.espeak import EspeakTTS

    return EspeakTTS(voice=settings.tts_voice)


def _edge(settings: Settings) -> TTS:
    from live_server.engines.tts.edge import EdgeTTS
    from live_server.engines.tts.espeak import EspeakTTS

    return EdgeTTS(voice=settings.tts_voice, fallback=EspeakTTS(voice=None))


def _openai_tts(settings: Settings) -> TTS:
    from live_server.engines.tts.openai import OpenAITTS

    return OpenAITTS(
        base_url=settings.tts_base_url,
        api_key=settings.tts_api_key,
        model=settings.tts_model,
        voice=settings.tts_voice,
    )


LLM_FACTORIES: dict[str, Callable[[Settings], LLM]] = {
    "echo": _echo,
    "openai": _openai_llm,
    "local": _local_llm,
}
TTS_FACTORIES: dict[str, Callable[[Settings], TTS]] = {
    "piper": _piper,
    "espeak": _espeak,
    "edge": _edge,
    "openai": _openai_tts,
}


def _whisper(settings: Settings) -> STT:
    from live_server.engines.stt.whisper import WhisperSTT

    return WhisperSTT(
        model_dir=settings.whisper_model,
        language=settings.stt_language,
        workers=settings.stt_workers,
    )


def _pocketsphinx(settings: Settings) -> STT:
    from live_server.engines.stt.pocketsphinx import PocketsphinxSTT

    return PocketsphinxSTT(workers=settings.stt_workers)


def _openai_stt(settings: Settings) -> STT:
    from live_server.engines.stt.openai import OpenAISTT

    return OpenAISTT(
        base_url=settings.stt_base_url,
        api_key=settings.stt_api_key,
        model=settings.stt_model,
        language=settings.stt_language,
    )


STT_FACTORIES: dict[str, Callable[[Settings], STT]] = {
    "whisper": _whisper,
    "pocketsphinx": _pocketsphinx,
    "openai": _openai_stt,
}


def build_llm(settings: Settings) -> LLM:
    return LLM_FACTORIES[settings.llm](settings)


def build_tts(settings: Settings) -> TTS | None:
    """The configured TTS engine, or None for `LIVE_TTS=none` (text-only replies)."""
    if settings.tts == "none":
        return None
    return TTS_FACTORIES[settings.tts](settings)


def build_end_model(settings: Settings, llm: LLM) -> EndModel | None:
    """The model that judges at a pause whether the words are finished (`LIVE_TURN_POLICY=model`):
    the embedded chat model when it is the one in use, else the embedded model loaded for this
    alone (one slot, a small context). None without speech recognition or that policy."""
    if settings.turn_policy != "model" or settings.stt == "none":
        return None
    from live_server.engines.llm.local import LocalLLM

    if isinstance(llm, LocalLLM):
        return llm
    try:
        return LocalLLM(model=settings.local_model, threads=1, context=512, slots=1)
    except ConfigError as exc:
        raise ConfigError(
            f"LIVE_TURN_POLICY=model judges the end of a turn with the embedded model: {exc} "
            "(or set LIVE_TURN_POLICY=text to judge it from the words' punctuation alone)"
        ) from exc


def build_stt(settings: Settings) -> STT | None:
    """The configured recogniser, or None for `LIVE_STT=none` (voice frames are refused)."""
    if settings.stt == "none":
        return None
    return STT_FACTORIES[settings.stt](settings)
