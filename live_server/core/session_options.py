"""What a socket chooses for its session, as one value: the sockets set it whole with
`Session.configure` and read it back from `Session.options`, instead of reaching into the
session. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from live_server.core.voice_input import TurnDetection


@dataclass(frozen=True)
class SessionOptions:
    # The system prompt; None: the conversation's own (the server's default, or the stored one).
    instructions: str | None = None
    speak: bool = True  # replies with audio, when the server has a voice (Realtime: text only)
    # The server's turn detection (`vad=server`, Realtime's `server_vad`/`semantic_vad`);
    # None: the client says where a segment of speech ends.
    detection: TurnDetection | None = None
    # A finished segment of speech starts a reply; False: it waits for the client's request
    # (Realtime's `create_response: false`, or no turn detection).
    auto_respond: bool = True
    # Audio sent with no segment open starts one at this rate (Realtime's input buffer); None:
    # audio needs `start_speaking` first (the AstrBot Live API).
    implicit_rate: int | None = None
    # How many of the latest turns the client may cut by id (Realtime's truncate). Zero: the
    # AstrBot socket cuts only the last, through `interrupt`.
    cuttable_turns: int = 0
    # Send the model's reasoning to the client as it comes (`LIVE_SHOW_REASONING`, AstrBot
    # sockets); it is never spoken nor kept as the answer either way.
    show_reasoning: bool = False
