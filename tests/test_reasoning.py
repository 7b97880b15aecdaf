"""A reasoning model's thinking kept apart from its answer as the text streams (`reasoning`),
without sockets: tags split across deltas, a stream that starts inside a block, a block never
closed, and text that only looks like a tag."""

from __future__ import annotations

import pytest

from live_server.engines.reasoning import ThinkFilter


def run(deltas: list[str], *, inside: bool = False) -> tuple[str, str]:
    thinking = ThinkFilter(inside=inside)
    answer = reasoning = ""
    for delta in [*deltas, None]:
        split = thinking.feed(delta) if delta is not None else thinking.flush()
        answer += split.answer
        reasoning += split.reasoning
    return answer, reasoning


@pytest.mark.parametrize(
    ("deltas", "answer", "reasoning"),
    [
        (["<think>Hmm.</think>Yes."], "Yes.", "Hmm."),
        (["<thi", "nk>Hm", "m.</th", "ink>\n\n", "Yes."], "Yes.", "Hmm."),
        (["<", "t", "h", "i", "n", "k", ">a", "<", "/", "think", ">b"], "b", "a"),
        (["<thinking>Plan.</thinking> Go."], "Go.", "Plan."),
        (["<THINK>Caps.</Think>Fine."], "Fine.", "Caps."),
        (["<think>never closed"], "", "never closed"),
        (["<think>never closed </thi"], "", "never closed </thi"),
        (["Plain answer."], "Plain answer.", ""),
        (["x < y and <b>bold</b>, <thin ice>"], "x < y and <b>bold</b>, <thin ice>", ""),
        (["Ends on <", "thi"], "Ends on <thi", ""),
        (["Before <think>mid</think> after."], "Before  after.", "mid"),
    ],
)
def test_the_answer_and_the_reasoning_apart(deltas: list[str], answer: str, reasoning: str) -> None:
    assert run(deltas) == (answer, reasoning)


def test_a_stream_that_starts_inside_a_block() -> None:
    assert run(["The template opened it.", "</think>", "\nAnswer."], inside=True) == (
        "Answer.",
        "The template opened it.",
    )


def test_nothing_is_held_back_that_cannot_be_a_tag() -> None:
    thinking = ThinkFilter()
    assert thinking.feed("Hello there").answer == "Hello there"
    assert thinking.feed(" <").answer == " "  # "<" may start a tag: held
    assert thinking.feed("3 apples").answer == "<3 apples"
