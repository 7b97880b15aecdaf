"""What a session tells its client, as typed events that know nothing of any wire format.

The turn pipeline and the session produce these; each wire protocol's codec turns them into its
own frames (`astrbot/codec.py` for the AstrBot Live API, `realtime/codec.py` for the OpenAI
Realtime API). An event that belongs to a turn carries its id: the connection drops the frames
of a turn once that turn is interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from live_server.audio.convert import Audio
from live_server.errors import ErrorCode

InputType = Literal["text", "audio"]


@dataclass(frozen=True, slots=True)
class ConversationOpened:
    """The stored conversation the connection's turns continue."""

    conversation_id: str
    resumed: bool
    messages: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The server's turn detection heard speech begin (at `audio_ms` into the input)."""

    audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The server's turn detection heard the speech end: the segment becomes a turn."""

    audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class PartialTranscript:
    """A guess at the words of the segment still being spoken."""

    text: str


@dataclass(frozen=True, slots=True)
class InputAdded:
    """A user input joined the conversation: typed text, or a finished segment of speech
    whose words are still being recognised."""

    input_id: int
    kind: InputType
    text: str = ""


@dataclass(frozen=True, slots=True)
class Transcript:
    """The recognised words of a finished segment ("" when none were)."""

    input_id: int
    text: str
    seconds: float = 0.0  # the length of the speech recognised


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """A reply begins: the user's text is settled and the model is asked."""

    turn_id: int
    input_type: InputType
    user_text: str
    figures: dict[str, Any] = field(default_factory=dict)  # the opening metrics


@dataclass(frozen=True, slots=True)
class TextDelta:
    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A delta of the model's reasoning, shown to a client that asked for it; never spoken,
    never part of the answer or the history."""

    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of the reply, sent just before its audio (or alone, when it has none)."""

    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class SpokenAudio:
    """The speech of one sentence."""

    turn_id: int
    text: str
    audio: Audio


@dataclass(frozen=True, slots=True)
class ReplyText:
    """The whole reply, for a turn that sent no audio."""

    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Metrics:
    turn_id: int | None
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Failed:
    """Something went wrong: a bad frame (no turn) or a stage of a turn."""

    code: ErrorCode
    message: str
    turn_id: int | None = None


@dataclass(frozen=True, slots=True)
class Stopped:
    """The turn was interrupted: the client must stop playing its audio now."""

    turn_id: int


@dataclass(frozen=True, slots=True)
class Ended:
    """The turn is over and stored: its one and only end. `assistant` is what was kept of the
    reply (what the user heard, when it was interrupted)."""

    turn_id: int
    interrupted: bool
    user_text: str = ""
    assistant: str = ""
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Truncated:
    """What is kept of an earlier reply was cut to the audio the client played."""

    turn_id: int
    played_ms: int
    assistant: str


Event = (
    ConversationOpened
    | SpeechStarted
    | SpeechStopped
    | PartialTranscript
    | InputAdded
    | Transcript
    | TurnStarted
    | TextDelta
    | ReasoningDelta
    | Sentence
    | SpokenAudio
    | ReplyText
    | Metrics
    | Failed
    | Stopped
    | Ended
    | Truncated
)


# --- chat mode: a text reply streamed into a stored conversation, to everyone listening -------


@dataclass(frozen=True, slots=True)
class ChatAccepted:
    """A chat reply will run in this conversation, under this id (told before it runs)."""

    session_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ChatStarted:
    session_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ChatDelta:
    session_id: str
    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ChatReasoning:
    """A delta of the model's reasoning, for listeners that asked to see it."""

    session_id: str
    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ChatReplied:
    """The whole reply: after its deltas (`streamed`), or instead of them."""

    session_id: str
    message_id: str
    text: str
    streamed: bool
    reasoning: str = ""  # the whole reasoning, when shown


@dataclass(frozen=True, slots=True)
class ChatStats:
    session_id: str
    message_id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatSaved:
    """The exchange is stored: the user's message and the reply, with their ids."""

    session_id: str
    message_id: str
    user_message_id: int
    assistant_message_id: int
    created_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class ChatFailed:
    session_id: str
    message_id: str
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class ChatEnded:
    """The reply's one end, also when it was interrupted or failed."""

    session_id: str
    message_id: str
    interrupted: bool
    saved_message_id: int | None = None


ChatEvent = (
    ChatAccepted
    | ChatStarted
    | ChatDelta
    | ChatReasoning
    | ChatReplied
    | ChatStats
    | ChatSaved
    | ChatFailed
    | ChatEnded
)
