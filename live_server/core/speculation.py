"""A reply started before its turn: at a pause whose words look finished, the model (and the
TTS of its first sentences) starts on the recogniser's guess while the server still waits to
know whether the speaker is done.

Every event of a speculative reply is held here, none reaches the connection. When the turn is
declared over with the same words, `release` sends what was held, in order, and lets the rest
through: the reply's first audio is then often ready the moment the turn ends. When the speaker
goes on, `drop` cancels it (which closes the model's stream and frees the CPU) and forgets what
it held: nothing of it reaches the client, the history or the store, since a turn is recorded
only by the session, and only once adopted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from live_server.core import events
from live_server.core.turn_state import TurnEvent, TurnState

if TYPE_CHECKING:
    from live_server.core.output import OnSent, Output
    from live_server.core.turn import Turn, TurnRunner


class Speculation:
    def __init__(self, text: str, turn: Turn, output: Output) -> None:
        self.text = text
        self.turn = turn
        self._output = output
        self._held: list[tuple[events.Event, OnSent | None, bool]] = []
        self._released = False
        self.runner: TurnRunner | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, runner: TurnRunner) -> None:
        self.runner = runner
        self.task = asyncio.create_task(runner.run(), name=f"live-speculation-{self.turn.id}")

    async def send(self, event: events.Event, on_sent: OnSent | None) -> None:
        if self._released:
            await self._output.send(event, turn=self.turn, on_sent=on_sent)
        else:
            self._held.append((event, on_sent, False))

    def send_now(self, event: events.Event) -> None:
        if self._released:
            self._output.send_now(event, turn=self.turn)
        else:
            self._held.append((event, None, True))

    async def release(self, opening: dict[str, Any]) -> None:
        """The turn is over with these words: send what was held, then let the rest through.
        The turn's opening event gets the figures known only now (the recogniser's)."""
        self.turn.metrics.update(opening)
        while self._held:
            event, on_sent, now = self._held.pop(0)
            if isinstance(event, events.TurnStarted):
                event = dataclasses.replace(event, figures={**event.figures, **opening})
            if now:
                self._output.send_now(event, turn=self.turn, on_sent=on_sent)
            else:
                await self._output.send(event, turn=self.turn, on_sent=on_sent)
        self._released = True

    def drop(self) -> None:
        """The speaker went on (or the turn was cut off): stop the reply and forget what it
        held. Safe to call more than once."""
        if self.task is not None:
            self.task.cancel()
        if self.turn.state is TurnState.HELD:  # not adopted: it never was a turn
            self.turn.move(TurnEvent.DROP)
        self._held.clear()
        if not self._released:
            self.turn.metrics.clear()
