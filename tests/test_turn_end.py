"""The end-of-turn policy, pure: how finished words read, and the silence they need."""

from __future__ import annotations

import pytest

from live_server.core.turn_end import (
    BOUNDS,
    CUT_OFF_WITHIN_MS,
    LIKELY,
    MAX_PATIENCE_MS,
    PATIENCE_MARGIN_MS,
    SPECULATE,
    SPECULATE_LEAD_MS,
    UNLIKELY,
    Bounds,
    Eagerness,
    Patience,
    Verdict,
    bare,
    completeness,
    end_probability,
    judge,
    needs_model,
    scoring_prompt,
    silence_needed,
    text_probability,
)

MEDIUM = BOUNDS[Eagerness.MEDIUM]


def test_the_recognisers_own_full_stop_is_not_read_as_an_end():
    assert bare("And so my fellow Americans.") == "And so my fellow Americans"
    assert bare("  What time is it?  ") == "What time is it"
    assert scoring_prompt("Ask not.") == 'Someone said: "Ask not'


def test_only_tokens_that_end_a_sentence_count():
    top = {".": 0.3, '?"': 0.1, " and": 0.4, ",": 0.15, "!": 0.05}
    assert end_probability(top) == pytest.approx(0.45)
    assert end_probability({" the": 0.9}) == 0.0


@pytest.mark.parametrize(
    "text",
    ["I'd like to book a table for the", "Yesterday I went to the store and.", "Well, um", "So,"],
)
def test_words_that_go_on_are_unfinished_whatever_the_model_says(text):
    assert text_probability(text) == 0.0
    assert completeness(text, model=0.9) == 0.0
    assert judge(text, 0.9, MEDIUM).silence_ms == MEDIUM.unfinished_ms


def test_a_question_is_finished_even_when_the_model_doubts_it():
    assert completeness("What time is it?", model=0.02) == LIKELY
    assert completeness("Who are you going with?", model=0.01) == LIKELY
    # Words that may end a sentence are left to the model.
    for text in (
        "Than he was.",
        "I'd love to.",
        "What is it about.",
        "And so am I fellow America!",
    ):
        assert text_probability(text) is None
    assert judge("What time is it?", 0.02, MEDIUM).silence_ms == MEDIUM.complete_ms


@pytest.mark.parametrize(
    "text", ["What time is it?", "Who are you going with?", "I went to the store and", "So,"]
)
def test_words_whose_end_decides_need_no_model(text):
    """The pause's verdict does not wait for the model when it could change nothing."""
    assert not needs_model(text)
    verdicts = {judge(text, model, MEDIUM).silence_ms for model in (None, 0.001, 0.5, 0.99)}
    speculate = {judge(text, model, MEDIUM).speculate for model in (None, 0.001, 0.5, 0.99)}
    assert len(verdicts) == 1 and len(speculate) == 1
    assert needs_model("We must find a new home in the stars.")


def test_without_a_model_a_full_stop_waits_halfway():
    verdict = judge("We must find a new home in the stars.", None, MEDIUM)
    assert MEDIUM.complete_ms < verdict.silence_ms < MEDIUM.unfinished_ms


def test_the_silence_falls_as_the_probability_rises():
    probabilities = [0.0, UNLIKELY, 0.02, 0.05, 0.1, 0.2, LIKELY, 0.9]
    waits = [silence_needed(p, MEDIUM) for p in probabilities]
    assert waits[0] == waits[1] == MEDIUM.unfinished_ms
    assert waits[-1] == waits[-2] == MEDIUM.complete_ms
    assert waits == sorted(waits, reverse=True) and len(set(waits)) == 6


def test_kennedys_pauses_wait_longer_than_he_paused_at_every_eagerness_but_high():
    """His model probabilities at the two long pauses (measured with SmolLM2-135M): 0.06 after
    "And so my fellow Americans", 0.003 after "... can do for you"; he paused 1.06 and 0.99 s."""
    for eagerness in (Eagerness.LOW, Eagerness.MEDIUM):
        assert judge("And so my fellow Americans.", 0.06, BOUNDS[eagerness]).silence_ms > 1060
        assert (
            judge("... what your country can do for you.", 0.003, BOUNDS[eagerness]).silence_ms
            > 990
        )
    # A finished sentence is answered after the short pause, at every eagerness.
    for bounds in BOUNDS.values():
        assert judge("He might even have been made amiable himself.", 0.47, bounds).silence_ms == (
            bounds.complete_ms
        )


def test_a_reply_is_started_early_only_on_words_that_may_be_finished():
    assert judge("We must find a new home in the stars.", 0.6, MEDIUM).speculate
    assert not judge("And so my fellow Americans, ask not", 0.003, MEDIUM).speculate
    assert not judge("", 0.9, MEDIUM).speculate


def test_bounds_in_the_wrong_order_are_refused():
    with pytest.raises(ValueError):
        Bounds(complete_ms=900, unfinished_ms=300)
    lows = [BOUNDS[e].unfinished_ms for e in (Eagerness.HIGH, Eagerness.MEDIUM, Eagerness.LOW)]
    assert lows == sorted(lows)


def test_a_speaker_cut_off_is_given_the_pause_they_took_and_more():
    patient = Patience().after(1000)  # spoke again 1 s into the silence that ended the turn
    bounds = patient.bounds(MEDIUM)
    assert bounds.complete_ms > 1000 and bounds.unfinished_ms == MEDIUM.unfinished_ms
    # Words that read as finished wait that long; unfinished ones wait as before.
    assert judge("might never die.", 0.66, bounds).silence_ms == bounds.complete_ms
    assert judge("And so my fellow Americans.", 0.003, bounds).silence_ms == 3000
    # A longer cut-off teaches more, a shorter one does not unlearn.
    assert Patience().after(1000).after(1400).floor_ms > patient.floor_ms
    assert patient.after(400).floor_ms == patient.floor_ms


def test_a_long_pause_inside_the_turn_teaches_as_a_cut_off_does():
    # On after 1 s inside the turn: finished words then wait that and the margin.
    paced = Patience().within(1000, MEDIUM)
    assert paced.floor_ms == 1000 + PATIENCE_MARGIN_MS
    assert paced.bounds(MEDIUM).complete_ms == 1000 + PATIENCE_MARGIN_MS
    # A pause shorter than finished words' silence would not have been taken for the end.
    assert Patience().within(MEDIUM.complete_ms - 1, MEDIUM) == Patience()
    assert paced.within(400, MEDIUM) == paced  # nor does a shorter one unlearn
    low = BOUNDS[Eagerness.LOW]
    assert Patience().within(500, low) == Patience()  # `low` waits 600 ms anyway


def test_patience_is_bounded_and_fades_over_turns_not_taken_up_again():
    longest = Patience().after(CUT_OFF_WITHIN_MS)
    assert longest.bounds(MEDIUM).complete_ms == MAX_PATIENCE_MS  # the operator's most
    assert longest.bounds(MEDIUM, 1000).complete_ms == 1000
    assert longest.bounds(MEDIUM, 0) is MEDIUM  # LIVE_TURN_PATIENCE_MS=0: off
    high = BOUNDS[Eagerness.HIGH]
    assert longest.bounds(high).complete_ms == high.unfinished_ms  # never past the bounds
    # Speaking again well after the end is a new turn: what was learnt halves each time.
    patient = Patience().after(1000)
    later = patient.after(CUT_OFF_WITHIN_MS + 1)
    assert later.floor_ms == patient.floor_ms // 2
    assert later.after(10_000).after(10_000).bounds(MEDIUM) == MEDIUM
    assert Patience().bounds(MEDIUM) is MEDIUM


def test_a_reply_starts_at_the_pause_or_shortly_before_the_words_wait_is_over():
    soon = Verdict("We must find a new home in the stars.", 0.6, 300)
    assert soon.speculate_now(0)  # the turn may end within a reply's start: at once
    late = Verdict("might never die.", 0.66, 1300)
    assert not late.speculate_now(300)
    assert late.speculate_now(1300 - SPECULATE_LEAD_MS)
    unlikely = Verdict("And so my fellow Americans.", SPECULATE / 2, 1700)
    assert not unlikely.speculate_now(1700)  # never: the turn will hardly end here
    assert not Verdict("", 0.9, 300).speculate_now(300)
