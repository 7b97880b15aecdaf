"""A model's reply as it streams: its text, its timing and how it ended.

A live turn and a chat reply are the same thing up to what they do with each delta (speak it,
or publish it to a chat session): both stream through `ModelReply`, which keeps the text, when
the first and last deltas came, the model's own finish reason and token count, and the error
that cut the stream short, if one did. A reasoning model's thinking (`<think>` blocks) is kept
apart here (`reasoning`): only the answer is streamed on, and a reply that is all reasoning
ends with `NO_ANSWER`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from live_server.engines import LLM, ChatMessage, Outcome
from live_server.engines.reasoning import Split, ThinkFilter
from live_server.errors import ErrorCode, LLMError


class ModelReply:
    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.parts: list[str] = []
        self.outcome = Outcome()  # how the model says the reply ended, and its token count
        self.error: LLMError | None = None
        self.started: float | None = None
        self.first: float | None = None  # the answer's first delta
        self.ended: float | None = None
        self.reasoning_parts: list[str] = []  # the model's thinking, never part of `text`
        self.reasoning_first: float | None = None
        self._thinking = ThinkFilter()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def failed(self) -> bool:
        return self.error is not None

    async def stream(
        self, messages: list[ChatMessage], *, reasoning: bool = False
    ) -> AsyncGenerator[str, None]:
        """The deltas. A model failure ends the stream and is kept in `error`. Iterate it in
        `aclosing`: the provider's stream is then closed at once however the iteration ends (a
        cancelled turn included). With `reasoning`, the model's reasoning comes too, as
        `Reasoning` deltas (to be shown, never spoken or kept as the answer)."""
        self.started = time.perf_counter()
        try:
            async with aclosing(self.llm.stream(messages, outcome=self.outcome)) as deltas:
                async for delta in deltas:
                    for part in self._take(self._thinking.take(delta), reasoning):
                        yield part
            for part in self._take(self._thinking.flush(), reasoning):
                yield part
            if not self.parts and self.reasoning_parts:
                raise LLMError(
                    "the model wrote only its reasoning and no answer", code=ErrorCode.NO_ANSWER
                )
        except LLMError as exc:
            self.error = exc
        finally:
            self.ended = time.perf_counter()

    def _take(self, split: Split, show: bool) -> list[str]:
        """Keep the reasoning apart; what to stream on: the answer's text, and the reasoning
        as `Reasoning` when it is to be shown."""
        now = time.perf_counter()
        if split.reasoning:
            if self.reasoning_first is None:
                self.reasoning_first = now
            self.reasoning_parts.append(split.reasoning)
        if split.answer:
            if self.first is None:
                self.first = now
            self.parts.append(split.answer)
        return split.deltas(reasoning=show)

    def reasoning_time(self) -> float | None:
        """From the first word of reasoning to the answer's first (or the end)."""
        if self.reasoning_first is None:
            return None
        return _span(self.reasoning_first, self.first or self.ended)

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
