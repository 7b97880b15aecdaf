"""The logic of one live connection, protocol-neutral: commands in, events out.

A session takes commands (a text turn, an interrupt, voice segments, or, for the Realtime API,
inputs that wait for an explicit reply) and tells its `Output` what happens as typed events; a
protocol adapter turns client frames into commands and a codec turns events into frames. The
session never touches a socket, so it runs in process with scripted engines. It is the thin
place that wires the engines, the options a socket chose, voice input and the history to the
turns (`turns.Turns`, which own the turns' order and life cycle).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from live_server.core import events
from live_server.core.conversation import Conversation, ConversationFeed
from live_server.core.history import History, LiveConversation
from live_server.core.inputs import Recognising, Source
from live_server.core.output import Output
from live_server.core.session_options import SessionOptions
from live_server.core.turn import Turn
from live_server.core.turns import Turns
from live_server.core.voice_input import VoiceInput
from live_server.core.voice_segment import VoiceSegment
from live_server.engines import TTS, Engines
from live_server.errors import ErrorCode, ProtocolError
from live_server.settings import Settings
from live_server.storage import Store

log = logging.getLogger(__name__)


class Session:
    def __init__(
        self,
        *,
        username: str,
        settings: Settings,
        engines: Engines,
        store: Store,
        feed: ConversationFeed,
        live: LiveConversation | None,
        output: Output,
        options: SessionOptions | None = None,
    ) -> None:
        self.username = username
        self.settings = settings
        self.engines = engines
        self.output = output
        self._closed = False
        conversation = live.conversation if live is not None else Conversation.configured(settings)
        self.history = History(
            username=username,
            store=store,
            feed=feed,
            live=live,
            conversation=conversation,
            report=self.tell,
        )
        self.voice = VoiceInput(
            stt=engines.stt,
            vad=engines.vad,
            max_seconds=settings.max_segment_s,
            listener=self,
            end_model=engines.end_model,
        )
        self.turns = Turns(
            username=username,
            history=self.history,
            output=output,
            engines=engines,
            options=lambda: self._options,
        )
        self._pending: list[Source] = []  # inputs waiting for `respond()`
        self._input_ids = 0
        self._options = SessionOptions()
        self.configure(options or SessionOptions())

    @property
    def conversation(self) -> Conversation:
        return self.history.conversation

    @property
    def turn(self) -> Turn | None:
        """The turn replying, or still finishing after an interrupt; None when idle."""
        return self.turns.current

    @property
    def speculations(self) -> dict[str, int]:
        """How many speculative replies were used and dropped."""
        return self.turns.speculations

    # --- options -------------------------------------------------------------------------

    @property
    def options(self) -> SessionOptions:
        """The options in force; `instructions` is always the prompt the model is given."""
        return self._options

    def configure(self, options: SessionOptions) -> None:
        """Apply `options` whole. Turns already running keep what they started with."""
        if options.instructions is not None:
            self.conversation.system_prompt = options.instructions
        options = replace(options, instructions=self.conversation.system_prompt)
        self.voice.detection = options.detection
        self.voice.implicit_rate = options.implicit_rate
        self._options = options

    @property
    def tts(self) -> TTS | None:
        """The voice replies are spoken with; None: text replies only."""
        return self.turns.tts

    @property
    def replying(self) -> bool:
        """A reply is under way and not interrupted (what Realtime's `response.cancel` stops)."""
        turn = self.turns.current
        return turn is not None and not turn.interrupted

    # --- state -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """The client is gone: no turn starts any more."""
        return self._closed

    def open(self) -> None:
        """The connection is up: announce the stored conversation, and follow it."""
        live = self.history.live
        if live is not None:
            messages = 2 * len(self.conversation)
            self.tell(events.ConversationOpened(live.id, live.resumed, messages))
            self.history.join()

    async def aclose(self) -> None:
        """The client is gone: stop the turns, keep what it got of them, finish saving."""
        if self._closed:
            raise RuntimeError("the session is already closed")
        self._closed = True
        self.voice.drop()
        for source in self._pending:
            if isinstance(source, Recognising):
                source.cancel()
        await self.turns.aclose()
        self.history.leave()
        self.turns.save_cut_off()
        await self.history.drain()

    def tell(self, event: events.Event) -> None:
        self.output.send_now(event)

    # --- commands ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A typed turn: the text, and a reply to it."""
        self.turns.start(self.turns.new([text]))

    def add_text(self, text: str) -> int:
        """A typed input that waits for `respond()`; its id."""
        self._input_ids += 1
        self._pending.append(text)
        self.tell(events.InputAdded(self._input_ids, "text", text))
        return self._input_ids

    def start_speaking(self, stamp: object, sample_rate: int) -> None:
        self.voice.start(stamp, sample_rate)

    def add_audio(self, data: str) -> None:
        """A part of the user's speech (base64 PCM) for the open segment, or a new one."""
        self.voice.add(data)

    def end_speaking(self, stamp: object) -> None:
        self.voice.end(stamp)

    def commit_audio(self) -> None:
        """The open segment, whatever its stamp, is the user's input (Realtime's commit)."""
        self.voice.commit()

    def clear_audio(self) -> None:
        """Forget the open segment's audio."""
        self.voice.drop()

    def respond(self) -> None:
        """Reply to the inputs added since the last reply."""
        if not self._pending:
            raise ProtocolError(
                "there is no new input to reply to: add a user message or commit audio first",
                code=ErrorCode.INVALID_MESSAGE,
            )
        turn = self.turns.new(self._pending)
        self._pending = []
        self.turns.start(turn)

    def interrupt(self, played_ms: int | None) -> None:
        """Stop the reply; `played_ms`: how much of its audio the client played."""
        self.turns.interrupt(played_ms)

    def cut(self, turn_id: int, played_ms: int) -> None:
        """The client played only `played_ms` of a turn's reply: keep only that. A running
        turn is interrupted there."""
        self.turns.cut(turn_id, played_ms)

    # --- voice (`voice_input.Listener`) ----------------------------------------------------

    def segment_ended(self, voice: VoiceSegment) -> None:
        stt = self.voice.stt()
        turns = self.turns
        turn: Turn | None = None
        if self._options.auto_respond:
            try:
                turn = turns.new([], adopt=True)
            except ProtocolError:
                voice.cancel()
                raise
            turn.opening.update(voice.turn_end)
            if turns.dropped_since_turn:
                turn.opening["speculations_dropped"] = turns.dropped_since_turn
        else:
            turns.drop_speculation()
        turns.dropped_since_turn = 0
        voice.close()
        self._input_ids += 1
        spoken = Recognising(voice, self._input_ids, stt.name, self.tell)
        self.tell(events.InputAdded(spoken.input_id, "audio"))
        if turn is not None:
            turn.sources = [spoken]
            turn.input_type = "audio"
            turns.start(turn)
        else:
            self._pending.append(spoken)

    def speculate(self, text: str) -> None:
        """Start a reply to `text`, held back (`speculation`), if the session is idle."""
        self.turns.speculate(text, allowed=self._options.auto_respond)

    def drop_speculation(self) -> None:
        self.turns.drop_speculation()

    def read_ahead(self, text: str) -> None:
        """The words so far: the model reads the turn's prompt ahead, if the session is idle."""
        if self._options.auto_respond:
            self.turns.read_ahead(text)

    def bot_talking(self, now: float) -> bool:
        return self.turns.talking(now) is not None

    def barge_in(self) -> None:
        """The user talks over the bot: stop the reply as `interrupt` would."""
        self.turns.barge_in()
