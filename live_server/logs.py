"""Logging set-up, with credentials redacted from every line.

Tokens and API keys arrive in query strings, and uvicorn logs the full path of every request
and WebSocket handshake; the filter sits on the handler, so it sees uvicorn's records too.
"""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import urlsplit, urlunsplit

_SECRET_PARAM = re.compile(
    r"(?i)((?:token|access_token|api_key|apikey|key|password|secret)=)[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"']+")
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


def redact_url(url: str) -> str:
    """A database's or Redis's address without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class ClientFaultFilter(logging.Filter):
    """A client's bad bytes are the client's fault, not a server error: uvicorn logs invalid
    UTF-8 in a text frame with a traceback (and closes with 1007, as it should). That becomes
    one warning line, so that a client sending many cannot fill the log with tracebacks."""

    FAULTS = ("Invalid UTF-8 sequence received from client",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.msg, str) and record.msg.startswith(self.FAULTS):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.msg.rstrip('.')}: closed with 1007"
        return True


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(ClientFaultFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The websockets library logs every frame at debug, cut in the middle: noise that reads
    # like a transcript but is not one. A turn's own debug line holds its whole text.
    logging.getLogger("websockets").setLevel(max(root.level, logging.INFO))
