"""Chat mode: text replies with no speech, several at once, shared by every bound listener.

A `ChatReply` streams one answer into a session as chat events (`events.ChatEvent`: deltas,
stats, the saved exchange and one end, also when it is interrupted or its model fails), which
the AstrBot codec turns into frames, as it does a voice turn's. The WebSocket's chat channel and
the HTTP chat endpoint both run their replies through it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from live_server.astrbot import frames
from live_server.astrbot.codec import frames_of
from live_server.astrbot.hub import Audience, ChatHub, Subscriber
from live_server.core import events
from live_server.core.conversation import Conversation, ConversationFeed, Exchange
from live_server.core.reply import ModelReply
from live_server.engines import LLM, Reasoning
from live_server.errors import ErrorCode, LiveError
from live_server.settings import Settings
from live_server.storage import (
    InputKind,
    NotYours,
    SavedTurn,
    Store,
    claim,
    new_conversation_id,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatContext:
    """What every reply of a connection needs."""

    settings: Settings
    llm: LLM
    store: Store
    hub: ChatHub
    feed: ConversationFeed


class Stage(StrEnum):
    """Where a chat reply is in its life; it moves only forward, by `NEXT`."""

    WAITING = "waiting"  # created; its task has not run yet
    CLAIMING = "claiming"  # checking that the conversation is the user's
    STREAMING = "streaming"  # the model's deltas go out
    CONCLUDING = "concluding"  # saving and ending: an interrupt no longer changes anything
    DONE = "done"


# The stages a reply may move to from each: the one table of its life cycle.
NEXT: Mapping[Stage, frozenset[Stage]] = {
    Stage.WAITING: frozenset({Stage.CLAIMING, Stage.STREAMING, Stage.CONCLUDING, Stage.DONE}),
    Stage.CLAIMING: frozenset({Stage.STREAMING, Stage.CONCLUDING, Stage.DONE}),
    Stage.STREAMING: frozenset({Stage.CONCLUDING, Stage.DONE}),
    Stage.CONCLUDING: frozenset({Stage.DONE}),
    Stage.DONE: frozenset(),
}


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(8)}"


class ChatReply:
    def __init__(
        self,
        ctx: ChatContext,
        *,
        sender: Subscriber,
        text: str,
        session_id: str | None = None,
        message_id: str | None = None,
        streaming: bool = True,
        input_type: InputKind = "chat",
        claimed: bool = False,
    ) -> None:
        self.ctx = ctx
        self.sender = sender
        self.username = sender.username
        self.text = text
        self.session_id = session_id or new_conversation_id()
        self.message_id = message_id or new_message_id()
        self.streaming = streaming
        self.input_type = input_type
        self.reply = ModelReply(ctx.llm)
        self.stage = Stage.WAITING
        self.interrupted = False  # stopped by an interrupt (or its sender leaving)
        self.saved: SavedTurn | None = None
        self.task: asyncio.Task[None] | None = None
        self._to_sender = True
        # The session is the user's, so frames may go to its listeners (the caller may have
        # checked already).
        self._accepted = claimed
        self._received_at = time.time()

    def start(self) -> asyncio.Task[None]:
        self.ctx.hub.add_reply(self)
        self.task = asyncio.create_task(self._run(), name=f"chat-{self.message_id}")
        return self.task

    def interrupt(self, *, sender_left: bool = False) -> None:
        """Stop the reply; it still saves what was written and sends its `end`."""
        if sender_left:
            self._to_sender = False
        if self.task is None or self.task.done() or self.interrupted:
            return
        if self.stage in (Stage.CONCLUDING, Stage.DONE):
            return
        self.interrupted = True
        # A task cancelled before its first step never runs its body (no `end`, no save, never
        # leaving the hub): one not started yet sees `interrupted` when it starts instead.
        if self.stage is not Stage.WAITING:
            self.task.cancel()

    # --- the reply ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            try:
                if not self._accepted:
                    self._move(Stage.CLAIMING)
                    try:
                        await claim(self.ctx.store, self.session_id, self.username)
                    except LiveError as exc:
                        # Not the user's session: only the sender hears of it; no turn ran.
                        await self._publish(events.ChatFailed(*self.ids, exc.code, exc.message))
                        return
                    self._accepted = True
                if not self.interrupted:
                    self._move(Stage.STREAMING)
                    await self._stream()
            except asyncio.CancelledError:
                if not self.interrupted:
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            self._move(Stage.CONCLUDING)
            if self._accepted:
                await self._conclude()
            else:  # stopped before it began: nothing to save
                await self._publish(events.ChatEnded(*self.ids, interrupted=True))
        finally:
            self._move(Stage.DONE)
            self.ctx.hub.remove_reply(self)

    def _move(self, stage: Stage) -> None:
        if stage not in NEXT[self.stage]:
            raise RuntimeError(f"a {self.stage} chat reply cannot move to {stage}")
        self.stage = stage

    async def _stream(self) -> None:
        conversation = await Conversation.load(self.ctx.store, self.ctx.settings, self.session_id)
        # AstrBot 4.29's client learns here that the reply runs, and under which id.
        await self._publish(events.ChatStarted(*self.ids))
        # The reasoning comes too, for the listeners that show it (each connection's choice).
        stream = self.reply.stream(conversation.messages_for(self.text), reasoning=True)
        async with aclosing(stream) as deltas:  # closed at once when the reply is cancelled
            async for delta in deltas:
                if not self.streaming:
                    continue
                if isinstance(delta, Reasoning):  # shown, in AstrBot's shape; never saved
                    await self._publish(
                        events.ChatReasoning(*self.ids, delta), Audience.SHOWING_REASONING
                    )
                else:
                    await self._publish(events.ChatDelta(*self.ids, delta))
        if (error := self.reply.error) is not None:
            await self._publish(events.ChatFailed(*self.ids, error.code, error.message))

    async def _conclude(self) -> None:
        text = self.reply.text
        if text and not self.interrupted:
            replied = events.ChatReplied(*self.ids, text, streamed=self.streaming)
            if reasoning := self.reply.reasoning:  # with it for those that show it
                await self._publish(replied, Audience.HIDING_REASONING)
                replied = dataclasses.replace(replied, reasoning=reasoning)
                await self._publish(replied, Audience.SHOWING_REASONING)
            else:
                await self._publish(replied)
        # Live sockets open on this conversation keep its history in memory: tell them.
        exchange = Exchange(self.text, text, self.interrupted)
        self.ctx.feed.added(self.username, self.session_id, exchange)
        stats = self.stats()
        await self._publish(events.ChatStats(*self.ids, stats))
        record = exchange.record(
            self.input_type,
            user_at=self._received_at,
            metrics={"input_type": self.input_type, **stats},
        )
        try:
            self.saved = await self.ctx.store.save_turn(self.session_id, self.username, record)
        except LiveError as exc:
            log.error("could not save chat reply %s: %s", self.message_id, exc.message)
            await self._publish(events.ChatFailed(*self.ids, exc.code, exc.message))
        else:
            # The exchange is stored as one: the user's message is saved with the reply.
            saved = self.saved
            await self._publish(
                events.ChatSaved(
                    *self.ids,
                    saved.user_message_id,
                    saved.assistant_message_id,
                    saved.created_at,
                )
            )
        saved_id = self.saved.assistant_message_id if self.saved is not None else None
        await self._publish(
            events.ChatEnded(*self.ids, interrupted=self.interrupted, saved_message_id=saved_id)
        )

    def stats(self) -> dict[str, Any]:
        reply = self.reply
        out: dict[str, Any] = {
            "time_to_first_token": reply.time_to_first(),
            "total_time": reply.total_time(),
            "chat_model": self.ctx.llm.name,
            "output_chars": len(reply.text),
        }
        # A stream stopped by an interrupt or a failure has no reason of the model's.
        if (reason := reply.finish_reason(interrupted=self.interrupted)) is not None:
            out["finish_reason"] = reason
        if (usage := reply.usage()) is not None:
            out["usage"] = usage
        if reply.reasoning_parts:
            out["reasoning_time"] = reply.reasoning_time()
        return out

    # --- who hears it --------------------------------------------------------------------------

    @property
    def ids(self) -> tuple[str, str]:
        """The conversation and the reply, as every chat event names them."""
        return self.session_id, self.message_id

    async def _publish(self, event: events.ChatEvent, audience: Audience = Audience.ALL) -> None:
        """The event's frames (the AstrBot codec's) to the sender and, once the conversation
        is known to be the user's, to every connection bound to it: those of `audience`."""
        sender = self.sender if self._to_sender else None
        for frame in frames_of(event):
            if not self._accepted:
                if sender is not None and audience.includes(sender):
                    await sender.send(frame)
            else:
                await self.ctx.hub.publish(self.session_id, frame, sender, audience)


class ChatChannel:
    """One connection's chat mode: its bindings and the replies it asked for."""

    def __init__(self, ctx: ChatContext, subscriber: Subscriber, *, max_replies: int) -> None:
        self.ctx = ctx
        self.subscriber = subscriber
        self.max_replies = max_replies
        self._replies: dict[str, ChatReply] = {}

    def handle(self, request: frames.ChatRequest) -> Awaitable[None] | None:
        """Act on a request; a bind returns what the reader awaits before its next frame (one
        store read), so that binds are answered one at a time, at the client's pace."""
        match request:
            case frames.ChatBind(session_id=session_id):
                return self._bind(session_id)
            case frames.ChatSend():
                self._send(request)
            case frames.ChatInterrupt(message_id=message_id):
                self._interrupt(message_id)
        return None

    async def _bind(self, session_id: str) -> None:
        try:
            info = await self.ctx.store.get(session_id)
            if info is None:
                raise LiveError(f"no session {session_id!r}", code=ErrorCode.NOT_FOUND)
            if info.username != self.subscriber.username:
                raise NotYours(f"session {session_id!r} belongs to another user")
        except LiveError as exc:
            self.subscriber.send_now(
                frames.chat_error(exc.code, exc.message, session_id=session_id)
            )
            return
        self.ctx.hub.bind(session_id, self.subscriber)
        subscription = f"ws_sub_{secrets.token_hex(6)}"
        self.subscriber.send_now(
            frames.chat_frame("session_bound", None, session_id=session_id, message_id=subscription)
        )

    def _send(self, request: frames.ChatSend) -> None:
        message_id = request.message_id
        username = self.subscriber.username
        if message_id is not None and self.ctx.hub.reply(username, message_id) is not None:
            raise _chat_error(
                f"a reply with message_id {message_id!r} is already running",
                ErrorCode.PROCESSING_ERROR,
                request,
            )
        if len(self._replies) >= self.max_replies:
            raise _chat_error(
                f"{len(self._replies)} replies are running on this connection; the limit is "
                f"{self.max_replies} (LIVE_CHAT_MAX_REPLIES)",
                ErrorCode.LIMIT_EXCEEDED,
                request,
            )
        reply = ChatReply(
            self.ctx,
            sender=self.subscriber,
            text=request.text,
            session_id=request.session_id,
            message_id=message_id,
            streaming=request.streaming,
        )
        self._replies[reply.message_id] = reply
        reply.start().add_done_callback(lambda _: self._replies.pop(reply.message_id, None))

    def _interrupt(self, message_id: str | None) -> None:
        """Without an id: every reply this connection asked for. With one: that reply, if it
        is this connection's or runs in a session this connection is bound to."""
        if message_id is None:
            for reply in list(self._replies.values()):
                reply.interrupt()
            return
        hub = self.ctx.hub
        target = hub.reply(self.subscriber.username, message_id)
        if target is None:  # over, or running on another process (which checks the same)
            hub.interrupt_elsewhere(
                self.subscriber.username, message_id, hub.sessions_of(self.subscriber)
            )
            return
        if target.sender is self.subscriber or self.ctx.hub.is_bound(
            target.session_id, self.subscriber
        ):
            target.interrupt()

    async def aclose(self) -> None:
        """The connection is gone: stop listening, and stop (and save) its replies."""
        self.ctx.hub.unbind_all(self.subscriber)
        replies = list(self._replies.values())
        for reply in replies:
            reply.interrupt(sender_left=True)
        pending = [r.task for r in replies if r.task is not None]
        await asyncio.gather(*pending, return_exceptions=True)


class ChatRequestError(LiveError):
    """A chat request refused before it started; reported with its ids."""

    def __init__(
        self, message: str, code: ErrorCode, session_id: str | None, message_id: str | None
    ) -> None:
        super().__init__(message, code=code)
        self.session_id = session_id
        self.message_id = message_id


def _chat_error(message: str, code: ErrorCode, request: frames.ChatSend) -> ChatRequestError:
    return ChatRequestError(message, code, request.session_id, request.message_id)
