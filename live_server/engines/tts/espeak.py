"""Embedded offline speech through libespeak-ng (shipped by `espeakng-loader`), via ctypes.

libespeak-ng keeps global state and is not thread-safe, so one process-wide engine runs every
synthesis on its own single worker thread. A synthesis is stopped early by its callback
returning 1 when the waiting coroutine is cancelled.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from live_server.audio.convert import Audio
from live_server.errors import TTSError
from live_server.text import is_cjk

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
# Audio handed to the callback at a time. A long buffer means few callbacks, each of which
# must take the GIL from the event loop; cancellation is still checked every few ms of CPU.
_BUFFER_MS = 5000
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The process's one libespeak-ng, used only from its worker thread."""

    _instance: ClassVar[_Engine | None] = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> _Engine:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._lib: Any = None
        self._voice: str | None = None
        self._chunks: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        self._cancel = threading.Event()
        self._callback = _SynthCallback(self._on_samples)
        self.sample_rate = 0

    def _load(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise TTSError(
                "LIVE_TTS=espeak needs the 'espeakng-loader' package: pip install espeakng-loader"
            ) from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        # The path is the folder that holds `espeak-ng-data`.
        data_parent = str(Path(espeakng_loader.get_data_path()).parent)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_parent.encode(), 0)
        if rate <= 0:
            raise TTSError(f"libespeak-ng failed to initialise (code {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        self.sample_rate = rate
        self._lib = lib

    def _on_samples(self, wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 1 if self._cancel.is_set() else 0

    def synthesize(self, text: str, voice: str, cancel: threading.Event) -> Audio:
        """Blocking; run only on `self.executor`."""
        if self._lib is None:
            self._load()
        if cancel.is_set():
            raise TTSError("cancelled")
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TTSError(f"espeak has no voice {voice!r}; see `espeak-ng --voices`")
            self._voice = voice
        self._chunks = []
        self._cancel = cancel
        data = text.encode() + b"\0"
        status = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if status != 0 and not cancel.is_set():
            raise TTSError(f"espeak failed to synthesize (code {status})")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return Audio(samples=samples.astype(np.int16, copy=False), sample_rate=self.sample_rate)


class EspeakTTS:
    name = "espeak"

    def __init__(self, *, voice: str | None) -> None:
        self._voice = voice or "en"
        self._engine = _Engine.get()

    def voice_for(self, text: str) -> str:
        # An English voice reads Chinese as letter names; switch to Mandarin for CJK text.
        if self._voice.startswith("en") and any(is_cjk(ch) for ch in text):
            return "cmn"
        return self._voice

    async def synthesize(self, text: str, *, due: float | None = None) -> Audio:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._engine.executor, self._engine.synthesize, text, self.voice_for(text), cancel
        )
        try:
            audio = await future
        except asyncio.CancelledError:
            cancel.set()
            raise
        if len(audio.samples) == 0:
            raise TTSError(f"espeak produced no audio for {text!r}")
        return audio

    async def aclose(self) -> None:
        pass
