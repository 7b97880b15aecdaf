"""What a turn replies to: typed text, or a finished segment of speech being recognised (which
starts at once, whether or not its turn may start yet)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from live_server.core import events
from live_server.core.voice_segment import VoiceSegment


class Recognising:
    """A finished segment of speech being recognised: it starts at once, whether or not its
    turn may start yet."""

    def __init__(
        self,
        voice: VoiceSegment,
        input_id: int,
        stt_name: str,
        tell: Callable[[events.Event], None],
    ) -> None:
        self.voice = voice
        self.input_id = input_id
        self.stt_name = stt_name
        self.assemble_time = round(voice.segment.assemble_time, 4)
        self.stt_time: float | None = None
        self._tell = tell
        self.task = asyncio.create_task(self._recognise(), name=f"live-stt-{input_id}")

    async def _recognise(self) -> str:
        t0 = time.perf_counter()
        text = await self.voice.transcript()
        self.stt_time = round(time.perf_counter() - t0, 4)
        seconds = self.voice.samples / self.voice.segment.sample_rate
        self._tell(events.Transcript(self.input_id, text, round(seconds, 3)))
        return text

    def cancel(self) -> None:
        self.task.cancel()
        self.voice.cancel()


Source = str | Recognising
