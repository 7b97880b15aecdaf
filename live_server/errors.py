"""One error hierarchy, each error carrying the wire code it maps to.

Each protocol's codec (`astrbot/codec.py`, `realtime/codec.py`) makes these error frames;
`web/socket_routes.py` is the one place that turns authentication failures into close codes.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The `code` of an `error` frame. The table in docs/live-api/README.md lists them all."""

    INVALID_MESSAGE_FORMAT = "INVALID_MESSAGE_FORMAT"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNSUPPORTED = "UNSUPPORTED"
    PROCESSING_ERROR = "PROCESSING_ERROR"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    LLM_ERROR = "LLM_ERROR"
    NO_ANSWER = "NO_ANSWER"  # the model wrote only its reasoning
    TTS_ERROR = "TTS_ERROR"
    STT_ERROR = "STT_ERROR"
    AUDIO_ERROR = "AUDIO_ERROR"
    EMPTY_TRANSCRIPT = "EMPTY_TRANSCRIPT"
    STORAGE_ERROR = "STORAGE_ERROR"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"
    BAD_USER = "BAD_USER"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455, section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


class LiveError(Exception):
    """Root of every error the server reports to a client."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ProtocolError(LiveError):
    """A client frame that is malformed, unknown, oversize or not allowed now."""

    code = ErrorCode.INVALID_MESSAGE_FORMAT


class AuthError(LiveError):
    """A connection that failed authentication; `message` is the close reason."""

    code = ErrorCode.UNAUTHORIZED


class ProviderError(LiveError):
    """An LLM, TTS or STT engine failed; `code` says which."""


class LLMError(ProviderError):
    code = ErrorCode.LLM_ERROR


class TTSError(ProviderError):
    code = ErrorCode.TTS_ERROR


class STTError(ProviderError):
    code = ErrorCode.STT_ERROR


class AudioError(ProtocolError):
    """Voice frames that cannot make a segment: out of order, undecodable or empty."""

    code = ErrorCode.AUDIO_ERROR


class ConfigError(Exception):
    """A setting that cannot work; raised at start-up with an actionable message."""
