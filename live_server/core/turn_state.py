"""A turn's life cycle as data: its states, the events that move it, and the one table of
legal transitions. Pure: no I/O, no clock, no asyncio. `Turn.move` is the only caller.

    HELD -- adopt --> WAITING -- reply --> REPLYING -- finish --> ENDED
      |                  |                    |
     drop            interrupt            interrupt
      v                  v                    v
    DROPPED           STOPPING ---------- finish --> STOPPED

A speculative reply's turn starts HELD (its frames held back) and is either adopted by the
turn the speaker ended, or dropped without a trace. Any other turn starts WAITING, for the
turn before it to end and for its words to be recognised. `hear` (how much of the reply's
audio the client played) is legal once the reply may have been heard, and moves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class TurnState(StrEnum):
    HELD = "held"  # a speculative reply: it runs, every frame of it held back
    WAITING = "waiting"  # for the turn before it to end, and for its words
    REPLYING = "replying"  # its reply streams to the client
    STOPPING = "stopping"  # interrupted: its task is being cancelled, its frames dropped
    ENDED = "ended"  # its one end is queued, what was said recorded
    STOPPED = "stopped"  # ended after an interrupt: what was heard recorded
    DROPPED = "dropped"  # a speculative reply the speaker overtook: it never reached anyone


class TurnEvent(StrEnum):
    ADOPT = "adopt"  # the turn the speaker ended takes over the speculative reply
    DROP = "drop"  # the speaker went on: the speculative reply is forgotten
    REPLY = "reply"  # the words are known: the reply goes out (or its held frames do)
    INTERRUPT = "interrupt"  # the client stopped it, or left
    FINISH = "finish"  # recorded, its end queued
    HEAR = "hear"  # the client says how much of the reply's audio it played


S, E = TurnState, TurnEvent
TRANSITIONS: Mapping[tuple[TurnState, TurnEvent], TurnState] = {
    (S.HELD, E.ADOPT): S.WAITING,
    (S.HELD, E.DROP): S.DROPPED,
    (S.WAITING, E.REPLY): S.REPLYING,
    (S.WAITING, E.INTERRUPT): S.STOPPING,
    (S.WAITING, E.FINISH): S.ENDED,  # nothing recognised, or a failure before the reply
    (S.REPLYING, E.INTERRUPT): S.STOPPING,
    (S.REPLYING, E.FINISH): S.ENDED,
    (S.STOPPING, E.HEAR): S.STOPPING,  # a Realtime truncate of a reply not yet recorded
    (S.STOPPING, E.FINISH): S.STOPPED,
    (S.ENDED, E.HEAR): S.ENDED,  # an interrupt after the end, or a truncate: cut what is kept
    (S.STOPPED, E.HEAR): S.STOPPED,
}
TERMINAL = frozenset({S.ENDED, S.STOPPED, S.DROPPED})
INTERRUPTED = frozenset({S.STOPPING, S.STOPPED})  # its frames are no longer sent


class IllegalTransition(RuntimeError):
    """A turn was asked to do what its state does not allow: a bug in the caller."""


def next_state(state: TurnState, event: TurnEvent) -> TurnState:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"a {state} turn cannot {event}") from None
