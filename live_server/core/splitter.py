"""Streaming sentence splitter that cuts LLM deltas into chunks worth speaking. Pure code.

`feed(delta)` returns the chunks completed by that delta, `flush()` the rest at the end of a
reply, `reset()` starts a new reply. A chunk ends after `.`, `!`, `?`, `;` or `…` followed by
white space, after a newline, or after `。！？；` (these need no space). A period ends nothing
inside a decimal, a URL or an e-mail address (no space follows it), after a known abbreviation
or an initial, or when the next word starts in lower case (`text.sentence_ends`). Chunks too
short to speak well are merged into the next one, and the first chunk of a reply is cut early at
a clause boundary once it is long enough, or, when a first sentence runs on with no clause mark,
before a word that opens a clause ("because", "which", "and") once `first_phrase_weight` long,
else at a space within `first_max_weight`, so that the first audio can start sooner. A chunk
cut before its line's end is a `LineGoesOn` (a `str`), so that speech text can tell a list
item's end from a cut inside it.
"""

from __future__ import annotations

import re

from live_server.text import ABBREVIATIONS, is_cjk, sentence_ends, weight

ASCII_ENDS = frozenset(".!?;…")
CJK_ENDS = frozenset("。！？；\n")
CLOSERS = frozenset("\"'”’)]}）】」』》")
ASCII_CLAUSES = frozenset(",:")
SPACES = frozenset(" \t")
CJK_CLAUSES = frozenset("，、：")
# English words that open a clause: a long first sentence may be cut before one. (Not "that",
# "so" or "to": "read that book", "so much", "want to go".)
CLAUSE_OPENERS = frozenset(
    {
        "and", "but", "or", "because", "which", "who", "whose", "where", "when", "while",
        "if", "although", "though", "since", "unless", "until", "whereas", "whether",
    }
)  # fmt: skip


def speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class LineGoesOn(str):
    """A chunk cut before its line's end (a long first sentence cut early, a run-on line): the
    next chunk goes on with the same line. Otherwise a plain `str`."""

    __slots__ = ()


class SentenceSplitter:
    def __init__(
        self,
        *,
        min_weight: int = 6,
        first_min_weight: int = 20,
        first_phrase_weight: int = 25,
        first_max_weight: int = 48,
        max_weight: int = 220,
    ):
        self.min_weight = min_weight
        self.first_min_weight = first_min_weight
        self.first_phrase_weight = first_phrase_weight
        self.first_max_weight = first_max_weight
        self.max_weight = max_weight
        self.reset()

    def reset(self) -> None:
        self._buf = ""
        self._carry = ""  # text cut off but too short to speak alone
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        out = self._drain(final=True)
        rest = (self._carry + self._buf).strip()
        self._carry = self._buf = ""
        if speakable(rest):
            out.append(rest)
            self._emitted += 1
        return out

    def _drain(self, *, final: bool) -> list[str]:
        out: list[str] = []
        while (cut := self._find_cut(final=final)) is not None:
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            text = self._carry + piece
            if weight(text.strip()) < self.min_weight or not speakable(text):
                self._carry = text
                continue
            self._carry = ""
            goes_on = not piece.endswith("\n") and not self._buf.lstrip(" \t").startswith("\n")
            out.append(LineGoesOn(text.strip()) if goes_on and self._buf else text.strip())
            self._emitted += 1
        return out

    def _find_cut(self, *, final: bool) -> int | None:
        buf = self._buf
        end = self._sentence_end(buf, final=final)
        if self._emitted == 0:
            first = buf[:end] if end is not None else buf
            clause = self._clause_cut(first)
            if clause is not None and (end is None or clause < end):
                return clause
            # A neural voice takes about 3 ms a character: a long first sentence delays the
            # first audio by hundreds of ms, so it is cut before a word that opens a clause
            # ("... a lot of powers | which he can use"), else at a space.
            long = end is None or heard_weight(first) > self.first_max_weight
            if long and (phrase := self._phrase_cut(first)) is not None:
                return phrase
            if heard_weight(first) > self.first_max_weight:
                return _last_break(first, self.first_max_weight, clauses=False)
        if end is not None:
            return end
        if heard_weight(buf) > self.max_weight:
            return _last_break(buf, self.max_weight)
        return None

    def _sentence_end(self, buf: str, *, final: bool) -> int | None:
        """Where the first complete sentence in `buf` ends, if it is known yet."""
        n = len(buf)
        for i, ch in enumerate(buf):
            if ch in CJK_ENDS:
                j = _skip(buf, i + 1, CLOSERS)
                # A closing quote may still be on its way.
                return j if j < n or final or ch == "\n" else None
            if ch not in ASCII_ENDS:
                continue
            j = _skip(buf, i + 1, ASCII_ENDS | CLOSERS)
            if j == n:
                # The next character decides; wait for it unless the reply is over.
                return j if final else None
            nxt = buf[j]
            if is_cjk(nxt):
                return j
            if not nxt.isspace():
                continue  # 3.14, example.com, a@b.org
            if ch == ";":
                return j
            # The next word decides ("etc. and", "Mr. Smith", "No. 5"): wait for it.
            k = _skip_space(buf, j)
            if k == n and not final:
                return None
            if sentence_ends(buf[:j], buf[k:]):
                return j
        return None

    def _clause_cut(self, buf: str) -> int | None:
        """The first clause boundary after which the first chunk is long enough."""
        for i, ch in enumerate(buf):
            if ch in CJK_CLAUSES or (
                ch in ASCII_CLAUSES and i + 1 < len(buf) and buf[i + 1].isspace()
            ):
                end = i + 1
            else:
                continue
            if weight((self._carry + buf[:end]).strip()) >= self.first_min_weight:
                return end
        return None

    def _phrase_cut(self, buf: str) -> int | None:
        """Before the first whole word that opens a clause, once the first chunk before it is
        long enough to speak well."""
        for i, ch in enumerate(buf):
            if ch not in SPACES:
                continue
            word_end = i + 1
            while word_end < len(buf) and not buf[word_end].isspace():
                word_end += 1
            if word_end == len(buf):  # the word may still be growing ("and" -> "android")
                return None
            word = buf[i + 1 : word_end].lower()
            if word in CLAUSE_OPENERS and (
                weight((self._carry + buf[:i]).strip()) >= self.first_phrase_weight
            ):
                return i + 1
        return None


# What the voice does not say of a chunk (`speech_text`): a markdown link's target, whole or
# begun ("](https://...)"), the path of a bare URL, and emphasis and code marks.
_LINK_TARGET = re.compile(r"\]\([^)\s]*\)?")
_URL_PATH = re.compile(r"(\w+://[^\s/]+)/\S*")
_MARKS = re.compile(r"[*_`]+")


def heard_weight(text: str) -> int:
    """`weight` of what the voice will say of `text`: a link's address adds no time to it."""
    return weight(_MARKS.sub("", _URL_PATH.sub(r"\1", _LINK_TARGET.sub("]", text))))


def _skip(buf: str, i: int, chars: frozenset[str]) -> int:
    while i < len(buf) and buf[i] in chars:
        i += 1
    return i


def _skip_space(buf: str, i: int) -> int:
    while i < len(buf) and buf[i].isspace():
        i += 1
    return i


def _word_before(buf: str, i: int) -> str:
    start = i
    while start > 0 and not buf[start - 1].isspace() and buf[start - 1] not in CLOSERS:
        start -= 1
    return buf[start:i]


def _last_break(buf: str, max_weight: int, *, clauses: bool = True) -> int:
    """Where to cut a run-on chunk within `max_weight`: the last clause mark (if `clauses`),
    else the last space, else at the limit itself."""
    limit, total = 0, 0
    for ch in buf:
        total += weight(ch)
        if total > max_weight:
            break
        limit += 1
    breaks = (CJK_CLAUSES | ASCII_CLAUSES, SPACES) if clauses else (SPACES,)
    for marks in breaks:
        for i in range(limit - 1, 0, -1):
            if buf[i] in marks and not _binds_on(buf, i):
                return i + 1
    return max(limit, 1)


def _binds_on(buf: str, i: int) -> bool:
    """Whether the space at `i` follows a number or an abbreviation that belongs with the next
    word ("15 | mph", "Mt. | Everest", "p. | 12"): said apart, the unit is not read as one, and
    the abbreviation is spelled."""
    if buf[i - 1].isdigit():
        return True
    return buf[i - 1] == "." and _word_before(buf, i - 1).lower() in ABBREVIATIONS
