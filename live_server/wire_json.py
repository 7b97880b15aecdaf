"""JSON as it crosses the wire, for every protocol: strict decoding of what clients send
(finite numbers, bounded depth, lone surrogates repaired) and compact encoding of what is sent.
No I/O."""

from __future__ import annotations

import json
import re
from typing import Any

from live_server.errors import ProtocolError

MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]|\\u[dD][c-fC-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(_SURROGATE_ESCAPE.pattern.encode())
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(raw: str | bytes, what: str = "frame") -> Any:
    """JSON as a client may send it, or `ProtocolError`; never an exception of another kind.

    Numbers must be finite (`NaN`, `Infinity` and `1e999` are refused), nesting is at most
    `MAX_JSON_DEPTH` deep, and a lone UTF-16 surrogate escape (`"\\ud800"`, which a
    browser's `JSON.stringify` writes for text cut inside an emoji) becomes U+FFFD, as an
    invalid UTF-8 sequence would: such a string cannot be stored or sent back as it is.
    """
    try:
        obj = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError:  # UnicodeDecodeError and digit-limit errors included
        raise ProtocolError(f"{what} is not valid JSON") from None
    # A one-character test first (memchr): audio frames are base64, with no escapes at all.
    if isinstance(raw, str):
        found = "\\" in raw and _SURROGATE_ESCAPE.search(raw) is not None
    else:
        found = b"\\" in raw and _SURROGATE_ESCAPE_BYTES.search(raw) is not None
    return _checked(obj, what, surrogates=found)


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not a number JSON allows; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ProtocolError(f"the number {text[:40]} is out of range; numbers must be finite")
    return value


def _too_deep(what: str) -> ProtocolError:
    return ProtocolError(f"{what} is nested more than {MAX_JSON_DEPTH} deep")


def _checked(obj: Any, what: str, *, surrogates: bool) -> Any:
    """`obj` with its depth checked and, if `surrogates`, its strings repaired. Iterative: the
    parser accepts nesting deeper than Python's recursion limit allows walking."""
    fix: Any = _repair if surrogates else (lambda v: v)
    root = [fix(obj)]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(what)
        if isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str | list | dict):
                    node[i] = value = fix(value)
                    if not isinstance(value, str):
                        stack.append((value, depth + 1))
        elif isinstance(node, dict):
            if surrogates and any(_LONE_SURROGATE.search(k) for k in node):
                items = [(_repair(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            for key, value in node.items():
                if isinstance(value, str | list | dict):
                    node[key] = value = fix(value)
                    if not isinstance(value, str):
                        stack.append((value, depth + 1))
    return root[0]


def _repair(value: Any) -> Any:
    return well_formed(value) if isinstance(value, str) else value


def well_formed(text: str) -> str:
    """`text` with each lone surrogate (which no UTF-8 can hold) replaced by U+FFFD."""
    if text.isascii() or not _LONE_SURROGATE.search(text):
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


# Built once: `json.dumps` with any option but the defaults builds a new encoder per call,
# which costs more than encoding a delta frame.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_json(value: object) -> str:
    """`dumps` without spaces, by an encoder built once: for frames, which are many."""
    return well_formed(_COMPACT.encode(value))


def dumps(value: object, **kwargs: Any) -> str:
    """JSON text that can be sent as UTF-8: a lone surrogate (from a model's output, say)
    becomes U+FFFD instead of failing the send."""
    return well_formed(json.dumps(value, ensure_ascii=False, **kwargs))
