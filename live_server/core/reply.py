"""A model's reply as it streams: its text, its timing and how it ended.

A live turn and a chat reply are the same thing up to what they do with each delta (speak it,
or publish it to a chat session): both stream through `ModelReply`, which keeps the text, when
the first and last deltas came, the model's own finish reason and token count, and the error
that cut the stream short, if one did.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from live_server.engines import LLM, ChatMessage, Outcome
from live_server.errors import LLMError


class ModelReply:
    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.parts: list[str] = []
        self.outcome = Outcome()  # how the model says the reply ended, and its token count
        self.error: LLMError | None = None
        self.started: float | None = None
        self.first: float | None = None
        self.ended: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def failed(self) -> bool:
        return self.error is not None

    async def stream(self, messages: list[ChatMessage]) -> AsyncGenerator[str, None]:
        """The deltas. A model failure ends the stream and is kept in `error`. Iterate it in
        `aclosing`: the provider's stream is then closed at once however the iteration ends (a
        cancelled turn included)."""
        self.started = time.perf_counter()
        try:
            async with aclosing(self.llm.stream(messages, outcome=self.outcome)) as deltas:
                async for delta in deltas:
                    if self.first is None:
                        self.first = time.perf_counter()
                    self.parts.append(delta)
                    yield delta
        except LLMError as exc:
            self.error = exc
        finally:
            self.ended = time.perf_counter()

    def time_to_first(self) -> float | None:
        return _span(self.started, self.first)

    def total_time(self) -> float | None:
        return _span(self.started, self.ended)

    def finish_reason(self, *, interrupted: bool = False) -> str | None:
        """The model's reason, when the model itself ended the stream."""
        if self.failed or interrupted:
            return None
        return self.outcome.finish_reason

    def usage(self) -> dict[str, int] | None:
        return None if self.outcome.usage is None else self.outcome.usage.as_dict()


def _span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(end - start, 4)
