"""The life cycles, read from their tables: a turn's (every state reachable, the ends final,
an interrupted turn stays interrupted, a speculative reply adopted or dropped, never both) and
a chat reply's stages (forward only, and always able to end)."""

from __future__ import annotations

import pytest

from live_server.core.turn import Turn
from live_server.core.turn_state import (
    INTERRUPTED,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    TurnEvent,
    TurnState,
    next_state,
)

STARTS = (TurnState.HELD, TurnState.WAITING)


def reachable() -> set[TurnState]:
    seen, todo = set(STARTS), list(STARTS)
    while todo:
        state = todo.pop()
        for (a, _), b in TRANSITIONS.items():
            if a is state and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def test_every_state_is_reachable_from_a_start() -> None:
    assert reachable() == set(TurnState)


def test_only_hearing_moves_out_of_nothing_final() -> None:
    for (state, event), after in TRANSITIONS.items():
        if state in TERMINAL:
            assert event is TurnEvent.HEAR and after is state


def test_every_turn_that_is_not_final_can_end() -> None:
    for state in set(TurnState) - TERMINAL:
        events = {e for (s, e) in TRANSITIONS if s is state}
        assert events & {TurnEvent.FINISH, TurnEvent.DROP, TurnEvent.ADOPT, TurnEvent.REPLY}


def test_an_interrupted_turn_stays_interrupted() -> None:
    for (state, _), after in TRANSITIONS.items():
        if state in INTERRUPTED:
            assert after in INTERRUPTED


def test_a_speculative_reply_is_adopted_or_dropped() -> None:
    assert {e for (s, e) in TRANSITIONS if s is TurnState.HELD} == {
        TurnEvent.ADOPT,
        TurnEvent.DROP,
    }
    with pytest.raises(IllegalTransition):
        next_state(TurnState.DROPPED, TurnEvent.ADOPT)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (TurnState.ENDED, TurnEvent.FINISH),  # one end per turn
        (TurnState.STOPPED, TurnEvent.INTERRUPT),
        (TurnState.WAITING, TurnEvent.HEAR),  # nothing of it can have been played
        (TurnState.REPLYING, TurnEvent.REPLY),
        (TurnState.HELD, TurnEvent.INTERRUPT),  # nothing of it reached the client
    ],
)
def test_what_a_state_does_not_allow_is_refused(state: TurnState, event: TurnEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"a {state} turn cannot {event}"):
        next_state(state, event)


def test_a_turn_moves_only_by_its_table_and_keeps_what_was_heard() -> None:
    turn = Turn(id=1, user_text="hi", input_type="text")
    assert turn.state is TurnState.WAITING and not turn.interrupted
    turn.move(TurnEvent.REPLY)
    turn.interrupt(1200)
    assert turn.interrupted and turn.played_ms == 1200 and turn.metrics["played_ms"] == 1200
    assert not turn.finished.is_set()
    turn.hear(800)  # a truncate before the turn is recorded
    turn.move(TurnEvent.FINISH)
    assert turn.state is TurnState.STOPPED and turn.finished.is_set()
    assert turn.played_ms == 800
    with pytest.raises(IllegalTransition):
        turn.move(TurnEvent.FINISH)


def test_a_chat_reply_only_moves_forward_and_always_can_end() -> None:
    from live_server.astrbot.chat import NEXT, Stage

    order = list(Stage)
    assert set(NEXT) == set(Stage)
    for stage, following in NEXT.items():
        assert all(order.index(n) > order.index(stage) for n in following)
        if stage is not Stage.DONE:
            assert Stage.DONE in following
    assert NEXT[Stage.DONE] == frozenset()
