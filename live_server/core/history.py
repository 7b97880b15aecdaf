"""Recording a connection's turns: its conversation in memory, the feed to other connections
on the same conversation, and the store.

What is kept of a reply is what the user heard. A turn is recorded once it is over; a reply
the client later says it played only in part (an `interrupt` with `played_ms` after the end,
or a Realtime `conversation.item.truncate`) is cut, in memory and in the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from live_server.core import events
from live_server.core.conversation import Conversation, ConversationFeed, Exchange
from live_server.core.turn import Turn
from live_server.errors import LiveError
from live_server.storage import SavedTurn, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveConversation:
    """The stored conversation a connection's live turns continue and are saved to."""

    id: str
    resumed: bool
    conversation: Conversation


# The stage timings in a turn's log line: (name in the log, key in the turn's metrics).
_LOGGED_TIMES = (
    ("stt", "stt_time"),
    ("llm_first", "llm_ttft"),
    ("llm", "llm_total_time"),
    ("tts_first", "tts_first_frame_time"),
    ("first_audio", "speak_to_first_frame"),
    ("total", "wav_to_tts_total_time"),
)


class History:
    def __init__(
        self,
        *,
        username: str,
        store: Store,
        feed: ConversationFeed,
        live: LiveConversation | None,
        conversation: Conversation,
        report: Callable[[events.Event], None],
    ) -> None:
        self.username = username
        self.store = store
        self.feed = feed
        self.live = live
        self.conversation = conversation
        self._report = report
        self._saves: set[asyncio.Task[Any]] = set()

    def join(self) -> None:
        """From now on, exchanges other connections add to the conversation reach this copy."""
        if self.live is not None:
            self.feed.join(self.username, self.live.id, self.conversation)

    def leave(self) -> None:
        if self.live is not None:
            self.feed.leave(self.username, self.live.id, self.conversation)

    def keep(self, turn: Turn, exchange: Exchange) -> None:
        """Record the turn's exchange here and for the others on the conversation, and save it."""
        turn.exchange = exchange
        self.conversation.record(exchange)
        if self.live is not None:
            self.feed.added(self.username, self.live.id, exchange, by=self.conversation)
        self._save(turn, exchange)

    def cut(self, turn: Turn, played_ms: int) -> str | None:
        """What is kept of an earlier reply becomes what fits in `played_ms` of its audio; the
        new text, or None when nothing changed."""
        old = turn.exchange
        whole = turn.heard_text()
        turn.hear(played_ms)
        heard = turn.heard_text()
        if old is None or heard == whole:  # all of it was played, or nothing was kept
            return None
        cut = Exchange(old.user, heard, interrupted=True)
        self.conversation.replace(old, cut)
        if self.live is not None:
            self.feed.replaced(self.username, self.live.id, old, cut, by=self.conversation)
        turn.exchange = cut
        turn.metrics["played_ms"] = played_ms
        save, metrics = turn.save_task, dict(turn.metrics)
        if save is not None:
            self._track(asyncio.create_task(self._amend(turn, save, heard, metrics)))
        return heard

    async def _amend(
        self,
        turn: Turn,
        save: asyncio.Task[SavedTurn | LiveError],
        heard: str,
        metrics: dict[str, Any],
    ) -> None:
        saved = await save
        if isinstance(saved, LiveError):
            return
        try:
            await self.store.amend_reply(
                saved.assistant_message_id, heard, interrupted=True, metrics=metrics
            )
        except LiveError as exc:
            log.error("could not amend turn %d of %s: %s", turn.id, self.username, exc.message)
            self._report(events.Failed(exc.code, exc.message, turn.id))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    def _save(self, turn: Turn, exchange: Exchange) -> None:
        if self.live is None:
            return
        record = exchange.record(
            turn.input_type, user_at=turn.started_at, metrics=dict(turn.metrics)
        )
        conversation_id = self.live.id

        async def save() -> SavedTurn | LiveError:
            try:
                return await self.store.save_turn(conversation_id, self.username, record)
            except LiveError as exc:  # the client hears of it before the turn's end
                log.error("could not save turn %d of %s: %s", turn.id, self.username, exc.message)
                return exc

        turn.save_task = asyncio.create_task(save(), name=f"live-save-{turn.id}")
        self._track(turn.save_task)

    async def stored(self, turn: Turn) -> events.Event | None:
        """Once the turn is saved, nothing; if it could not be, why."""
        if turn.save_task is None:
            return None
        saved = await asyncio.shield(turn.save_task)
        if isinstance(saved, LiveError):
            return events.Failed(saved.code, saved.message, turn.id)
        return None

    async def drain(self) -> None:
        """Turns already over are saved even though the client has gone."""
        if self._saves:
            await asyncio.shield(asyncio.gather(*self._saves, return_exceptions=True))

    def log_turn(self, turn: Turn, exchange: Exchange, outcome: str) -> None:
        """One line per turn at info: who, what kind, how long, how fast, how it ended. The
        words themselves only at debug level, whole."""
        if not log.isEnabledFor(logging.INFO):
            return
        m = turn.metrics
        figures = " ".join(
            f"{name}={m[key]:.3f}s"
            for name, key in _LOGGED_TIMES
            if isinstance(m.get(key), int | float)
        )
        log.info(
            "turn %d of %s: %s, %d chars in, %d out, %s%s",
            turn.id,
            self.username,
            turn.input_type,
            len(exchange.user),
            len(exchange.assistant),
            outcome,
            f"; {figures}" if figures else "",
        )
        log.debug(
            "turn %d of %s: user %r, assistant %r",
            turn.id,
            self.username,
            exchange.user,
            exchange.assistant,
        )
