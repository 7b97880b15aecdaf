"""The AstrBot Live API over a socket: its frames become session commands (live mode) or chat
requests (chat mode), and the session's events go out through the AstrBot codec. It parses and
dispatches only: it neither writes to the socket nor reaches into the session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from live_server.astrbot import frames
from live_server.astrbot.chat import ChatChannel, ChatContext, ChatRequestError
from live_server.core.session import Session
from live_server.errors import LiveError
from live_server.transport.connection import Connection


class AstrBotSocket:
    """The connection's `Handler`, and chat mode's `hub.Subscriber`."""

    def __init__(
        self,
        connection: Connection,
        session: Session,
        chat: ChatContext,
        *,
        channel: frames.ChannelType = "live",
        force_channel: bool = False,
    ) -> None:
        self.connection = connection
        self.session = session
        self.username = session.username
        self.channel = channel
        self.force_channel = force_channel
        self.settings = session.settings
        self.chat = ChatChannel(chat, self, max_replies=self.settings.chat_max_replies)

    def receive(self, raw: str | bytes) -> Awaitable[None] | None:
        frame = frames.parse_client_frame(
            raw,
            max_text_chars=self.settings.max_text_chars,
            default_ct=self.channel,
            force_ct=self.force_channel,
        )
        session = self.session
        match frame:
            case frames.TextInput(text=text):
                session.say(text)
            case frames.Interrupt(played_ms=played_ms):
                session.interrupt(played_ms)
            case frames.StartSpeaking(stamp=stamp, sample_rate=rate):
                session.start_speaking(stamp, rate)
            case frames.SpeakingPart(data=data):
                session.add_audio(data)
            case frames.EndSpeaking(stamp=stamp):
                session.end_speaking(stamp)
            case frames.ChatFrame():
                return self._chat(frame)
        return None

    def _chat(self, frame: frames.ChatFrame) -> Awaitable[None] | None:
        try:
            request = frames.parse_chat_frame(frame, max_text_chars=self.settings.max_text_chars)
            return self.chat.handle(request)
        except ChatRequestError as exc:
            self.send_now(
                frames.chat_error(
                    exc.code, exc.message, session_id=exc.session_id, message_id=exc.message_id
                )
            )
        except LiveError as exc:
            self.send_now(frames.chat_error(exc.code, exc.message))
        return None

    def refuse(self, error: LiveError) -> None:
        self.connection.refuse(error)

    async def aclose(self) -> None:
        await asyncio.gather(self.session.aclose(), self.chat.aclose())

    # Chat mode's view of this connection (`hub.Subscriber`).

    @property
    def show_reasoning(self) -> bool:
        """The socket's `reasoning` (else `LIVE_SHOW_REASONING`), as its voice turns show it."""
        return self.session.options.show_reasoning

    async def send(self, frame: frames.Frame) -> None:
        await self.connection.send_text(frames.encode(frame))

    def send_now(self, frame: frames.Frame) -> None:
        self.connection.send_text_now(frames.encode(frame))
