"""What the voice says of a reply's text: the text frames keep the model's text (markdown and
all), and each sentence the splitter emits is turned here into what a person would say aloud.
Pure: no I/O, no engine; one `SpeechText` a reply, since a code fence spans sentences.

Two stages. The markup stage is the same for every language: code blocks are not read (a
language may say a short mention instead), inline code, emphasis, headings, list markers, block
quotes and HTML tags lose their marks, a link says its text, a bare URL its site ("en dot
wikipedia dot org"), table rows their cells, and emoji and decorative symbols nothing. The
reading stage is a language's own (`LANGUAGES`): English's rules (`speech_english`) say
numbers, money, percentages, times, dates, fractions, units, abbreviations, titles and Roman
numerals in words ("$5.99" -> "five dollars and ninety-nine cents", "e.g." -> "for example",
"Sgt." -> "Sergeant", "Henry VIII" -> "Henry the eighth"), where a voice would spell them or
misread them. A language adds its rules by adding a `Language` (and a module of its own); the
languages work will add Chinese numbers and units this way.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from live_server.core.speech_english import english_numbers, english_words
from live_server.core.splitter import LineGoesOn

Rule = Callable[[str], str]


@dataclass(frozen=True)
class Language:
    code: str
    rules: Sequence[Rule]  # applied in order after the markup stage
    code_block: str  # what is said once for a code block ("" to say nothing)


class SpeechText:
    """One reply's sentences, as the voice should say them, by the rules of `language` (a code
    such as "en" or "zh-CN"). A language without rules of its own gets the markup stage alone,
    its numbers left to its voice. With no language known (None), a sentence written in Latin
    letters is read by English rules and any other (Chinese, Cyrillic, Arabic...) by none."""

    def __init__(self, language: str | None = None) -> None:
        self.language = language_of(language) if language else None
        self._in_fence = False
        self._item_goes_on = False  # the last chunk ended inside a list item, heading or quote

    def say(self, sentence: str) -> str:
        """What to say for `sentence` ("" when nothing of it is to be said). A chunk the splitter
        cut before its line's end (`LineGoesOn`) ends no list item, heading or quote: the
        chunk that goes on with the line does."""
        lines = []
        written = sentence.split("\n")
        in_item, self._item_goes_on = self._item_goes_on, False
        for number, line in enumerate(written, 1):
            if _FENCE.match(line):
                opening = not self._in_fence
                self._in_fence = opening
                if opening and (mention := (self.language or NEUTRAL).code_block):
                    lines.append(mention)
                continue
            if self._in_fence:
                continue
            goes_on = number == len(written) and isinstance(sentence, LineGoesOn)
            item = in_item and number == 1
            # A line at a time: a table's rows, a list's items.
            lines.append(markup_to_words(line, ends_line=not goes_on, item=item))
            self._item_goes_on = goes_on and (item or structured(line))
        text = " ".join(lines)
        language = self.language or (LANGUAGES["en"] if latin(text) else NEUTRAL)
        for rule in language.rules:
            text = rule(text)
        return _tidy(text)


def language_of(code: str) -> Language:
    """The rules for a language code ("en-GB" -> English); markup alone for one without."""
    return LANGUAGES.get(code.replace("_", "-").split("-")[0].lower(), NEUTRAL)


_LETTER = re.compile(r"[^\W\d_]")


def latin(text: str) -> bool:
    """Whether most of `text`'s letters are Latin ones (a sentence in no other script)."""
    letters = _LETTER.findall(text)
    other = sum(1 for ch in letters if ch > "\u024f")  # past Latin Extended-B
    return other * 2 <= len(letters)


# --- the markup stage ------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")
# The end of a link whose text began in the sentence before ("guide](https://...)").
_LINK_TAIL = re.compile(r"\]\((?:[^()\s]|\([^()\s]*\))*\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_URL = re.compile(r"\b(?:https?://|www\.)([^\s/?#<>()\[\]]+)([^\s<>()\[\]]*)", re.IGNORECASE)
# A site named without "www." or a scheme ("bbc.co.uk/news"): known endings only, so that
# "config.yaml" or "Node.js" stay as written.
_DOMAIN = re.compile(
    r"(?<![\w@./-])((?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|ai|dev|app|co|uk|us|de|fr|eu|"
    r"info|me|tv|ca|au|jp|cn|in|nl|es|it|ch|se|ru|br))(?![\w-])(/[^\s<>()\[\]]*)?",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\""
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HRULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_LINE_MARK = re.compile(
    r"^\s*(?:>\s*)*(?:#{1,6}\s+|[-*+•‣◦▪●○]\s+|\d{1,3}[.)]\s+)?(?:\[[ xX]\]\s+)?"
)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_ITALIC_UNDER = re.compile(r"(?<![\w_])_(?=\S)([^_]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
# Marks left at a word's edge (not "#1": a language says it, "number one").
# "~5" is "about five" (a language says it).
_LEFT_MARKS = re.compile(
    r"(?<!\w)(?:[*_`|\[\]]|~(?!\s?[$€£¥₹₩]?\d)|#(?!\d))+|(?:[*_#`|\[\]]|~(?!\s?[$€£¥₹₩]?\d))+(?!\w)"
)
# Pictographs, dingbats, arrows, geometric shapes, box drawing, variation selectors, joiners.
_SYMBOLS = re.compile(
    "["
    "\U0001f000-\U0001faff"  # emoji, pictographs, flags, playing cards
    "\u2190-\u21ff"  # arrows
    "\u2500-\u27bf"  # box drawing, blocks, geometric shapes, misc symbols, dingbats
    "\u2b00-\u2bff"  # misc symbols and arrows
    "\ufe0e\ufe0f\u200d\u20e3"
    "]+"
)


# A citation or a footnote's mark ("[1]", "[^2]", "【3†source】"): for the eye only.
_CITATION = re.compile(r"\s?(?:\[\^?\d{1,3}\](?!\()|【[^】]*】)")
# Inline math between dollar signs ("$E = mc^2$"): its content, without the signs.
_INLINE_MATH = re.compile(r"(?<![\w$])\$(?=[^\s$\d])([^$\n]+?)(?<=\S)\$(?![\w$])")
_MATH_BRACKETS = re.compile(r"\\[()\[\]]")
# Ends with a sentence's or a clause's mark, maybe inside a bracket or quote ("(done.)").
_ENDED = re.compile(r"[.!?;:,…][)\]}\"'”’»]*$")
_PRODUCT = re.compile(r"(\d\s?)\*(\s?[\d.])")
# A face made of punctuation (":)", ":-D", ";)", ":P"): nothing to say, as an emoji.
_EMOTICON = re.compile(r"(?<![\w:])[:;=][-'^]?[)(DPpO3|\]\[/\\*]{1,3}(?![\w:/])")


def structured(line: str) -> bool:
    """Whether a line is a table row, a list item, a heading or a quote."""
    return line.count("|") >= 2 or len(_LINE_MARK.sub("", line, count=1)) < len(line.lstrip())


def markup_to_words(text: str, *, ends_line: bool = True, item: bool = False) -> str:
    """`text` without markdown, HTML, URLs' paths, emoji and decorative symbols. A table row,
    a list item, a heading or a quote (or the rest of one begun before, `item`) is a unit of
    its own: said with the pause of a sentence's end where its line ends (`ends_line`), even
    when the model wrote none."""
    if _TABLE_RULE.match(text) or _HRULE.match(text):
        return ""
    unit = item
    if text.count("|") >= 2:  # a table row: its cells, in order
        unit = True
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        text = ", ".join(c for c in cells if c)
    text = html.unescape(text)  # "&amp;" is "&", "&nbsp;" a space
    marked = _LINE_MARK.sub("", text, count=1)
    unit = unit or len(marked) < len(text.lstrip())
    text = marked
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _LINK_TAIL.sub("", text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    text = _URL.sub(_url, text)
    text = _DOMAIN.sub(_url, text)
    text = _INLINE_CODE.sub(lambda m: m.group(1), text)
    text = _CITATION.sub("", text)
    text = _INLINE_MATH.sub(lambda m: m.group(1), _MATH_BRACKETS.sub(" ", text))
    text = _EMOTICON.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _BOLD.sub(lambda m: m.group(2), text)  # group 1 is the mark, `**` or `__`
    text = _STRIKE.sub("", text)  # crossed out: the reader sees it is no longer meant
    for pattern in (_ITALIC_STAR, _ITALIC_UNDER):
        text = pattern.sub(lambda m: m.group(1), text)
    text = _PRODUCT.sub(r"\1×\2", text)  # "10 * 5": a product, not a stray emphasis mark
    text = _SYMBOLS.sub(" ", _LEFT_MARKS.sub(" ", text)).rstrip()
    if unit and ends_line and any(ch.isalnum() for ch in text) and not _ENDED.search(text):
        text += "."
    return text


def _url(m: re.Match[str]) -> str:
    """A URL said as its site; the sentence's own punctuation after it is kept."""
    whole = m.group(0)
    after = whole[len(whole.rstrip(_TRAILING)) :]
    host = m.group(1).rstrip(_TRAILING).lower().split("@")[-1].split(":")[0]
    return host.removeprefix("www.").replace(".", " dot ") + after


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    return text if any(ch.isalnum() for ch in text) else ""


LANGUAGES: dict[str, Language] = {
    "en": Language("en", rules=(english_words, english_numbers), code_block=""),
}
# A language with no rules of its own: the markup stage alone, numbers left to its voice.
NEUTRAL = Language("", rules=(), code_block="")
