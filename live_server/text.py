"""What kind of writing a text is in, how long it sounds (a CJK character carries about as
much speech as two Latin letters) and which full stops end no sentence. Pure code, shared by the
splitter, the engines and the conversation's bounds."""

from __future__ import annotations


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x3040 <= code <= 0x30FF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
    )


def weight(text: str) -> int:
    """Length as heard: a CJK character carries about as much speech as two Latin letters."""
    return sum(2 if is_cjk(ch) else 1 for ch in text)


# Lower-case words that a period does not end (compared without their final period).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf",
        "approx", "fig", "inc", "ltd", "co", "mt", "a.m", "p.m", "u.s", "u.k",
        "capt", "lt", "sgt", "col", "gov", "sen", "rep", "rev", "pres", "gen", "ft",
        "p", "pp", "ch", "vol", "eq", "est", "jan", "feb", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "hwy", "rte", "mon", "tue", "tues", "thu", "thur", "thurs",
        "fri",
    }
)  # fmt: skip

# Words whose full stop ends no sentence when a number follows ("No. 5"; "No. That is...").
NUMBER_LABELS = frozenset({"no", "nos"})
_OPENERS = "\"'([{\u201c\u2018"


def sentence_ends(text: str, following: str) -> bool:
    """Whether `text`, which ends with a sentence's end mark (a full stop, a question or an
    exclamation mark, and any quote or bracket closed after it), ends a sentence, `following`
    being the words after it and its white space: not before a word in lower case ("etc. and
    so on", "Is it? maybe"), and a lone full stop not after an abbreviation ("Mr.", "e.g."), an
    initial ("John F. Kennedy") or "No." before a number ("Item No. 5")."""
    first = following[:1]
    if first.islower():
        return False
    if not text.endswith(".") or text.endswith(".."):
        return True
    words = text[:-1].rsplit(None, 1)  # the last word alone
    word = words[-1].lstrip(_OPENERS) if words else ""
    name = word.lower()
    if name in ABBREVIATIONS or (len(word) == 1 and word.isupper()):
        return False
    return not (first.isdigit() and name in NUMBER_LABELS)
