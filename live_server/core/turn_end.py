"""When the speaker has finished: the end-of-turn policy. Pure: no I/O, no clock, no model.

Silence alone either answers late or cuts people off: a speaker who pauses inside a sentence
("And so my fellow Americans, ...", 1.1 s) has not finished, and one who asked a question and
stopped should be answered at once. So the silence that ends a turn depends on how finished
the words so far read. At each pause the recogniser's guess is scored: a language model gives
the probability that a sentence ends right after the words (the guess's own final full stop is
taken off first, since a recogniser puts one at every pause), and the guess's last characters
say the rest (a question mark, a trailing "and" or comma). A likely end is answered after
`Bounds.complete_ms` of silence; an unlikely one waits up to `Bounds.unfinished_ms`; in
between, in between on a log scale of the probability.

Words alone cannot tell a slow reader's line end ("That thereby beauty's rose might never
die,") from a sentence's end. The speaker can: one who talks again right after the server took
their pause for the end had not finished, and is given longer from then on (`Patience`); one
who already paused that long inside the turn and went on is given as long for the rest of it.

The model is asked to continue `Someone said: "<words>`: a frame any language model reads the
same way, chat-tuned or not, and one that told finished from unfinished sentences apart best of
those measured with SmolLM2-135M (finished 0.02-0.9, mostly above 0.1; cut mid-clause below
0.06, Kennedy's pauses 0.06 and 0.003).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Eagerness(StrEnum):
    """How soon to answer: the names of OpenAI Realtime's `semantic_vad`."""

    LOW = "low"  # let the speaker take their time
    MEDIUM = "medium"
    HIGH = "high"  # answer as soon as it may be over
    AUTO = "auto"  # the server's own bounds (`LIVE_TURN_COMPLETE_MS`, `LIVE_TURN_UNFINISHED_MS`)


@dataclass(frozen=True)
class Bounds:
    """The silence that ends a turn: after words that read as finished, and the longest pause
    allowed inside words that read as unfinished."""

    complete_ms: int
    unfinished_ms: int

    def __post_init__(self) -> None:
        if not 0 < self.complete_ms <= self.unfinished_ms:
            raise ValueError(f"the turn's bounds are out of order: {self}")


BOUNDS: Mapping[Eagerness, Bounds] = {
    Eagerness.LOW: Bounds(complete_ms=600, unfinished_ms=5000),
    Eagerness.MEDIUM: Bounds(complete_ms=300, unfinished_ms=3000),
    Eagerness.HIGH: Bounds(complete_ms=200, unfinished_ms=1200),
}

# The probability that a sentence ends after the words, read on a log scale between these: at
# or above LIKELY the words are finished, at or below UNLIKELY they are not.
LIKELY = 0.25
UNLIKELY = 0.01
# A reply is started on the guess, its frames held back, from this probability up: below it the
# turn is unlikely to end at this pause, and the reply would only take the CPU from the speaker.
SPECULATE = 0.05
# A reply has its first audio ready this long after it starts, with room to spare (its model's
# first words and the voice's first clause: 200-500 ms on two cores). One whose words need a
# longer silence is started this long before that silence is over, not at once: a speaker given
# longer (`Patience`) often goes on, and a reply dropped sooner took less of the CPU.
SPECULATE_LEAD_MS = 700

# Tokens a model may continue `Someone said: "<words>` with that end the sentence there.
SENTENCE_ENDS = frozenset({".", "?", "!", '."', '?"', '!"', "。", "？", "！"})

# Words a sentence hardly ever ends on: articles, conjunctions, possessives, prepositions that
# need their object, fillers. (Not "is", "that", "to", "about" and the like: "than he was", "I'd
# like that", "I'd love to", "what is it about" end sentences.)
_GOES_ON_WORDS = """
a an the and but or nor because although though unless whereas if of from with into onto than
my your his her its our their very um uh er erm
"""
_GOES_ON = frozenset(_GOES_ON_WORDS.split())
_LAST_WORD = re.compile(r"([^\W\d_]+(?:'[^\W\d_]+)?)\W*$")
_TRAILING = ".?!,;:。？！ \t\n"


def scoring_prompt(text: str) -> str:
    """What the model continues: its next token is a sentence's end, or more words."""
    return f'Someone said: "{bare(text)}'


def bare(text: str) -> str:
    """The words without the punctuation a recogniser put after them."""
    return text.strip().rstrip(_TRAILING).rstrip()


def end_probability(next_tokens: Mapping[str, float]) -> float:
    """The probability of a sentence's end, from the model's probabilities of its next tokens."""
    return min(1.0, sum(p for token, p in next_tokens.items() if token.strip() in SENTENCE_ENDS))


def text_probability(text: str) -> float | None:
    """What the words' last characters alone say: 0.0 for words that go on (a trailing "and",
    a comma), LIKELY for a question, None when they say nothing. (Not an exclamation mark:
    Whisper puts one after fragments, "And so am I fellow America!")"""
    text = text.strip()
    if not text:
        return 0.0
    if text.endswith(("?", "？")):
        return LIKELY
    last = _LAST_WORD.search(text)
    if last is not None and last.group(1).lower() in _GOES_ON:
        return 0.0
    if text.endswith((",", ";", ":", "-", "...", "…", "–", "—")):
        return 0.0
    return None


def needs_model(text: str) -> bool:
    """Whether the model's probability can change the verdict on `text`: not when the words'
    last characters decide it (a question may end the turn whatever the model says, a trailing
    "and" never does), and then the pause's verdict need not wait for it."""
    return text_probability(text) is None


# Without a model: words ending in a full stop (which a recogniser also puts at a pause), or in
# nothing, sit in the middle of the scale.
NO_MODEL = math.sqrt(LIKELY * UNLIKELY)


def completeness(text: str, model: float | None) -> float:
    """The probability that the turn is over after `text`: the model's, raised by a question
    mark, cut to 0 by words that go on; without a model, from the text alone."""
    cue = text_probability(text)
    if cue == 0.0:
        return 0.0
    p = model if model is not None else NO_MODEL
    return max(p, cue) if cue is not None else p


def silence_needed(p: float, bounds: Bounds) -> int:
    """The silence (ms) after which words of completeness `p` are the end of the turn."""
    if p >= LIKELY:
        return bounds.complete_ms
    if p <= UNLIKELY:
        return bounds.unfinished_ms
    share = math.log(p / UNLIKELY) / math.log(LIKELY / UNLIKELY)
    return round(bounds.unfinished_ms - share * (bounds.unfinished_ms - bounds.complete_ms))


@dataclass(frozen=True)
class Verdict:
    """What a pause's guess says: the words, how finished they read, the silence they need."""

    text: str
    p_end: float
    silence_ms: int

    @property
    def speculate(self) -> bool:
        return bool(self.text.strip()) and self.p_end >= SPECULATE

    def speculate_now(self, silence_ms: int) -> bool:
        """Whether a reply to the words starts, `silence_ms` into the pause."""
        return self.speculate and silence_ms >= self.silence_ms - SPECULATE_LEAD_MS


def judge(text: str, model: float | None, bounds: Bounds) -> Verdict:
    """The verdict on the words `text` guessed at a pause."""
    p = completeness(text, model)
    return Verdict(text, p, silence_needed(p, bounds))


# --- patience: a speaker who was cut off is given longer -----------------------------------

# Speech again within this long of the silence that ended a turn: the speaker had not finished
# (they paused, and the server took the pause for the end). Later, it is a new turn.
CUT_OFF_WITHIN_MS = 2000
# After a cut-off, words that read as finished wait the pause that was cut off and this much
# more (up to the operator's most, `LIVE_TURN_PATIENCE_MS`, and the bounds' `unfinished_ms`).
PATIENCE_MARGIN_MS = 300
MAX_PATIENCE_MS = 1500  # the default most


@dataclass(frozen=True)
class Patience:
    """How long a connection's speaker pauses without having finished, learnt from the turns
    the server ended too soon: the shortest silence after which even words that read as
    finished end the turn (0: the bounds' own). A slow reader of verse, cut off at the end of a
    line that reads as a sentence, is not cut off at the next line's end; each turn that ends
    and is not taken up again halves what was learnt, so a speaker who was cut off once is not
    kept waiting for the rest of the conversation."""

    floor_ms: int = 0

    def after(self, pause_ms: int) -> Patience:
        """The speaker spoke again `pause_ms` after the silence that ended their last turn
        began."""
        if pause_ms <= CUT_OFF_WITHIN_MS:
            return self._outlasting(pause_ms)
        return Patience(self.floor_ms // 2)

    def within(self, pause_ms: int, bounds: Bounds) -> Patience:
        """The speaker went on after a pause of `pause_ms` inside the turn. One at least as long
        as the silence that ends a turn after finished words would have been taken for the end
        had the words read as finished (the sonnet's first line end, 1 s after words that read
        as unfinished, and its second, after words that read as a sentence): for the rest of
        the turn, finished words wait that pause and the margin. A shorter one says nothing."""
        if pause_ms < bounds.complete_ms:
            return self
        return self._outlasting(pause_ms)

    def _outlasting(self, pause_ms: int) -> Patience:
        """Finished words wait out a pause of `pause_ms` with the margin (what was learnt of a
        longer pause stands)."""
        return Patience(max(self.floor_ms, pause_ms + PATIENCE_MARGIN_MS))

    def bounds(self, bounds: Bounds, most_ms: int = MAX_PATIENCE_MS) -> Bounds:
        """`bounds` with words that read as finished waiting at least the floor (at most
        `most_ms`; 0 turns patience off)."""
        floor = min(self.floor_ms, most_ms, bounds.unfinished_ms)
        if floor <= bounds.complete_ms:
            return bounds
        return Bounds(floor, bounds.unfinished_ms)
