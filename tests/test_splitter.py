"""The sentence splitter, table-driven, fed in every chunking from one character to all."""

from __future__ import annotations

import pytest

from live_server.core.splitter import SentenceSplitter, heard_weight
from live_server.text import weight


def split(text: str, step: int) -> list[str]:
    s = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += s.feed(text[i : i + step])
    return out + s.flush()


CASES = [
    ("Hello there. How are you? I am fine!", ["Hello there.", "How are you?", "I am fine!"]),
    ("First part; second part.", ["First part;", "second part."]),
    ("Line one\nLine two", ["Line one", "Line two"]),
    ("Pi is about 3.14159 today. Next one.", ["Pi is about 3.14159 today.", "Next one."]),
    (
        "Call Mr. Smith and Dr. Jones now. Done here.",
        ["Call Mr. Smith and Dr. Jones now.", "Done here."],
    ),
    (
        "Item No. 5 is on Hwy. 101. No. It is not.",
        ["Item No. 5 is on Hwy. 101.", "No. It is not."],
    ),
    (
        "Go now. Use tools, e.g. a hammer, i.e. the big one. Then stop.",
        ["Go now.", "Use tools, e.g. a hammer, i.e. the big one.", "Then stop."],
    ),
    (
        "See https://example.com/a.html?x=1 for more. Or not.",
        ["See https://example.com/a.html?x=1 for more.", "Or not."],
    ),
    (
        "Write to jane.doe@mail.example.org today. Thanks a lot.",
        ["Write to jane.doe@mail.example.org today.", "Thanks a lot."],
    ),
    (
        "Apples, pears, etc. are fruit. Yes they are.",
        ["Apples, pears, etc. are fruit.", "Yes they are."],
    ),
    ('He said "stop!" and left. Then silence.', ['He said "stop!" and left.', "Then silence."]),
    ("Really?! That is wild... I agree.", ["Really?!", "That is wild...", "I agree."]),
    ("Is it? maybe not. Fine then.", ["Is it? maybe not.", "Fine then."]),
    (
        "It was John F. Kennedy. He spoke (Mr. Lee said) well. Ok then.",
        ["It was John F. Kennedy.", "He spoke (Mr. Lee said) well.", "Ok then."],
    ),
    ("Hi. Ok. This is a sentence.", ["Hi. Ok.", "This is a sentence."]),
    ("Yes. No.", ["Yes. No."]),
    ("No punctuation at the end", ["No punctuation at the end"]),
    (
        "你好！今天天气很好。我们去公园吧？好的；走吧。",
        ["你好！今天天气很好。", "我们去公园吧？", "好的；走吧。"],
    ),
    ("价格是3.5元。很便宜。", ["价格是3.5元。", "很便宜。"]),
    ("他说：“你好。”然后走了。", ["他说：“你好。”", "然后走了。"]),
    ("Mixed English. 然后是中文。", ["Mixed English.", "然后是中文。"]),
    ("", []),
    ("...", []),
    ("   \n\n  ", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_split(text: str, expected: list[str], step: int) -> None:
    assert split(text, step) == expected


FIRST_CHUNK = [
    # The first chunk is cut at a clause once it is long enough to speak well...
    (
        "Well, the answer to your question is long, and it goes on for quite a while. Then more, and more.",
        [
            "Well, the answer to your question is long,",
            "and it goes on for quite a while.",
            "Then more, and more.",
        ],
    ),
    # ...but not at a comma too early, inside a number, or in a time of day.
    (
        "Sure, 1,000 people came at 10:30 today. Good.",
        ["Sure, 1,000 people came at 10:30 today.", "Good."],
    ),
    (
        "这个问题的答案其实比较复杂，我们需要从几个方面来看。首先是历史。",
        ["这个问题的答案其实比较复杂，", "我们需要从几个方面来看。", "首先是历史。"],
    ),
    ("Note: short. Next.", ["Note: short.", "Next."]),
    # A first sentence that runs on with no clause mark is cut at a space within 48 characters...
    (
        'You said: "And so my fellow Americans ask not what your country can do for you ask what you can do for your country." Next.',
        [
            'You said: "And so my fellow Americans ask not',
            'what your country can do for you ask what you can do for your country."',
            "Next.",
        ],
    ),
    # ...never between a title or a label and its word, which the voice would then spell...
    (
        "Capt. Hook met Sgt. Pepper on Jan. 5 near Mt. Everest. Then he left.",
        ["Capt. Hook met Sgt. Pepper on Jan. 5 near", "Mt. Everest.", "Then he left."],
    ),
    # ...or sooner, before a word that opens a clause, once 25 characters long...
    (
        "Mr. John Dashwood has a lot of powers which he can use wisely and well. Next.",
        ["Mr. John Dashwood has a lot of powers", "which he can use wisely and well.", "Next."],
    ),
    (
        "My favourite drink is green tea and I have it daily with milk. Next.",
        ["My favourite drink is green tea", "and I have it daily with milk.", "Next."],
    ),
    # ...not before a word that only starts like one, nor too early.
    (
        "The robot runs android software today and every day since. Next.",
        ["The robot runs android software today", "and every day since.", "Next."],
    ),
    ("Tea and cake and more, or so. Next.", ["Tea and cake and more,", "or so.", "Next."]),
]


@pytest.mark.parametrize(("text", "expected"), FIRST_CHUNK)
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_first_chunk_is_cut_early(text: str, expected: list[str], step: int) -> None:
    assert split(text, step) == expected


def test_run_on_text_is_cut_before_it_grows_too_long() -> None:
    text = "word " * 200
    chunks = split(text, 5)
    assert len(chunks) > 1
    assert all(weight(c) <= 220 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def test_run_on_chinese_is_cut_by_weight() -> None:
    chunks = split("很" * 300, 10)
    assert all(weight(c) <= 220 for c in chunks)
    assert "".join(chunks) == "很" * 300


def test_reset_starts_a_new_reply() -> None:
    s = SentenceSplitter()
    assert s.feed("Unfinished first") == []
    s.reset()
    assert s.feed("Well, this is the first chunk of a new reply, cut early. ") == [
        "Well, this is the first chunk of a new reply,"
    ]
    assert s.flush() == ["cut early."]


def test_a_period_waits_for_the_next_character() -> None:
    s = SentenceSplitter()
    assert s.feed("It costs 3.") == []
    assert s.feed("50 dollars. ") == []
    assert s.feed("Ok") == ["It costs 3.50 dollars."]
    assert s.flush() == ["Ok"]


def test_a_links_address_does_not_make_a_first_sentence_long() -> None:
    # Said, it is "Read the guide at docs dot python dot org.": short enough to be one chunk.
    text = "Read [the guide](https://docs.python.org/3/tutorial/index.html) at https://docs.python.org/3/library/asyncio-task.html. Then try it."
    assert heard_weight(text.split(" Then")[0]) < 48 < weight(text.split(" Then")[0])
    splitter = SentenceSplitter()
    chunks = [c for i in range(0, len(text), 7) for c in splitter.feed(text[i : i + 7])]
    assert chunks + splitter.flush() == [text.split(" Then")[0], "Then try it."]
