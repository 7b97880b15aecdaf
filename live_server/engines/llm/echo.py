"""The embedded echo model: a deterministic, offline stand-in for an LLM.

It streams a short multi-sentence reply that quotes the user, token by token, so that every
part of the protocol (deltas, sentence chunks, audio, interruption) can be seen with no key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Iterator, Sequence

from live_server.engines import ChatMessage, Outcome, Sampling, Usage
from live_server.text import is_cjk

# A token is one CJK character or a run of other non-space characters, with the white space
# before it: the shape of the deltas real models stream.
_WIDE = "\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"\s*(?:[{_WIDE}]|[^\s{_WIDE}]+)")


def echo_reply(messages: Sequence[ChatMessage]) -> str:
    said = [m["content"] for m in messages if m["role"] == "user"]
    text = said[-1] if said else ""
    n = len(said)
    if any(is_cjk(ch) for ch in text):
        return f"你说：“{text}”。我是内置的回声模型，只会重复你的话。这是你的第{n}句话。"
    return (
        f'You said: "{text}". I am the built-in echo model, so I can only repeat what I hear. '
        f"That was message number {n} from you."
    )


def tokenize(text: str) -> Iterator[str]:
    """Tokens one at a time: the first is out before the rest of the reply is scanned."""
    return (m.group() for m in _TOKEN.finditer(text))


class EchoLLM:
    name = "echo"

    def __init__(self, *, delay_ms: int) -> None:
        self._delay = delay_ms / 1000

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncGenerator[str, None]:
        # Of a caller's settings only `max_tokens` means anything to a model that repeats.
        limit = sampling.token_limit if sampling is not None else None
        sent = 0
        for token in tokenize(echo_reply(messages)):
            if sent == limit:  # more was to come: the limit cut the reply
                if outcome is not None:
                    outcome.finish_reason = "length"
                break
            # Between tokens, never before the first (a model that has its answer ready sends
            # it at once). sleep(0) still yields, so an interrupt is read between tokens.
            if sent:
                await asyncio.sleep(self._delay)
            yield token
            sent += 1
        if outcome is not None:
            prompt = sum(len(_TOKEN.findall(m["content"])) for m in messages)
            outcome.usage = Usage(prompt_tokens=prompt, completion_tokens=sent)

    async def aclose(self) -> None:
        pass
