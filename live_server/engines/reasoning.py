"""A model's reasoning kept apart from its answer, as the text streams. Pure: no I/O, no clock.

Reasoning models write their thinking first, inline between `<think>` and `</think>` (or
`<thinking>` tags), and nothing of it may reach the voice, the answer's text or the history.
`ThinkFilter.feed` takes each delta and returns the part of it that is answer and the part that
is reasoning; a tag split across deltas (`<thi` + `nk>`) is held back until it is known, and
`flush` settles what is held at the end. A stream that starts inside a block (the chat template
opened it, so the model writes only the closing tag) is followed with `inside=True`; a block
never closed is reasoning to the end. Reasoning a provider sends apart (`reasoning_content`
deltas, `Reasoning`) is reasoning whole (`take`).
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN_TAGS = ("<think>", "<thinking>")
CLOSE_TAGS = ("</think>", "</thinking>")


class Reasoning(str):
    """A delta of the model's reasoning that its server sends apart from the answer (DeepSeek's
    `reasoning_content`, vLLM's, Ollama's and OpenRouter's `reasoning`): an LLM stream yields
    it among the answer's deltas, and it is never part of the answer."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Split:
    answer: str = ""
    reasoning: str = ""

    def deltas(self, *, reasoning: bool = True) -> list[str]:
        """As a stream's deltas: the reasoning as `Reasoning` (left out unless `reasoning`),
        then the answer."""
        out: list[str] = [Reasoning(self.reasoning)] if reasoning and self.reasoning else []
        if self.answer:
            out.append(self.answer)
        return out


class ThinkFilter:
    def __init__(self, *, inside: bool = False) -> None:
        self.inside = inside
        self._held = ""  # the end of the text so far, which may be the start of a tag
        self._answer_started = False  # the answer's leading white space after a block is dropped
        self.saw_reasoning = inside

    def feed(self, delta: str) -> Split:
        text = self._held + delta
        self._held = ""
        answer: list[str] = []
        reasoning: list[str] = []
        while text:
            tags = CLOSE_TAGS if self.inside else OPEN_TAGS
            at, tag = _find(text, tags)
            if tag is None:
                keep = _partial_tag(text, tags)
                ready, self._held = text[: len(text) - keep], text[len(text) - keep :]
                (reasoning if self.inside else answer).append(ready)
                break
            (reasoning if self.inside else answer).append(text[:at])
            text = text[at + len(tag) :]
            self.inside = not self.inside
            self.saw_reasoning = True
        return Split(self._answer("".join(answer)), "".join(reasoning))

    def take(self, delta: str) -> Split:
        """A stream's delta split: reasoning its server sent apart (`Reasoning`) is reasoning
        whole; text is split at its tags (`feed`)."""
        if isinstance(delta, Reasoning):
            return Split(reasoning=str(delta))
        return self.feed(delta)

    def flush(self) -> Split:
        """The end of the stream: a partial tag held back was text after all."""
        held, self._held = self._held, ""
        if self.inside:
            return Split(reasoning=held)
        return Split(answer=self._answer(held))

    def _answer(self, text: str) -> str:
        if not self._answer_started and self.saw_reasoning:
            text = text.lstrip()  # the blank line models write after `</think>`
        if text:
            self._answer_started = True
        return text


def _find(text: str, tags: tuple[str, ...]) -> tuple[int, str | None]:
    """The first of `tags` in `text` (case-insensitive), and where it starts."""
    lower = text.lower()
    best, found = len(text), None
    for tag in tags:
        at = lower.find(tag)
        if at != -1 and at < best:
            best, found = at, tag
    return best, found


def _partial_tag(text: str, tags: tuple[str, ...]) -> int:
    """How many characters at the end of `text` may be the start of one of `tags`."""
    lower = text.lower()
    for n in range(min(len(lower), max(map(len, tags)) - 1), 0, -1):
        tail = lower[-n:]
        if any(tag.startswith(tail) for tag in tags):
            return n
    return 0
