"""Offline English recognition with the model the `pocketsphinx` package ships, streamed.

pocketsphinx keeps the GIL while it decodes, so a decoder on a thread would stall the event loop,
and with it every session, for as long as each chunk takes. Each decoder therefore lives in a
worker process of its own (a one-worker process pool, so its jobs run in the order given). The
process loads the model once when it starts and then serves one utterance after another. Audio
is submitted as `speaking_part` frames arrive, so at `end_speaking` only finalisation is left.

Workers are started on demand up to `workers` and kept; an utterance that finds them all busy
buffers its audio until one is free.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from live_server.audio.convert import PCM
from live_server.engines.stt.workers import Worker, exit_with_parent
from live_server.errors import STTError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

# --- inside a worker process ---------------------------------------------------------------

_decoder: Any = None


def _load() -> None:
    global _decoder
    from pocketsphinx import Decoder

    exit_with_parent()
    # Without the second (flat-lexicon) pass, ending an utterance takes milliseconds instead of
    # a re-decode of all of it, and on synthetic and clear speech it is as accurate.
    _decoder = Decoder(samprate=SAMPLE_RATE, fwdflat=False, loglevel="FATAL")


def _ready() -> None:
    pass


def _start() -> None:
    _decoder.start_utt()


def _feed(pcm: bytes) -> None:
    _decoder.process_raw(pcm, False, False)


def _finish() -> str:
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return str(hyp.hypstr).strip() if hyp is not None else ""


def _abort() -> None:
    _decoder.end_utt()


# --- in the server ---------------------------------------------------------------------------


class PocketsphinxSTT:
    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE

    def __init__(self, *, workers: int) -> None:
        self._max = max(1, workers)
        self._workers: list[Worker] = []
        self._idle: list[Worker] = []
        self._waiting: deque[asyncio.Future[Worker]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def warm_up(self) -> None:
        self._loop = asyncio.get_running_loop()
        worker = self._try_acquire()
        assert worker is not None
        try:
            await asyncio.wrap_future(worker.submit(_ready))
        except Exception as exc:
            self._release(worker, healthy=False)
            raise STTError(f"pocketsphinx failed to load its model: {exc}") from exc
        self._release(worker, healthy=True)

    def start(self, on_partial: Callable[[str], None] | None = None) -> _Recognition:
        self._loop = asyncio.get_running_loop()
        return _Recognition(self)

    def _try_acquire(self) -> Worker | None:
        if self._idle:
            return self._idle.pop()
        if len(self._workers) < self._max:
            worker = Worker(_load)
            self._workers.append(worker)
            return worker
        return None

    def _wait(self) -> asyncio.Future[Worker]:
        waiter: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return waiter

    def _release(self, worker: Worker, *, healthy: bool) -> None:
        """Give a worker back (on the event loop's thread). A failed one is replaced."""
        if worker not in self._workers:
            return  # closed meanwhile
        if not healthy:
            self._workers.remove(worker)
            worker.pool.shutdown(wait=False, cancel_futures=True)
            if not self._waiting:
                return
            replacement = self._try_acquire()
            assert replacement is not None
            worker = replacement
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _release_when_done(self, worker: Worker, job: Future[Any]) -> None:
        """Give the worker back once `job` has run; job callbacks run on a pool thread."""

        def done(job: Future[Any]) -> None:
            healthy = not job.cancelled() and job.exception() is None
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(lambda: self._release(worker, healthy=healthy))

        job.add_done_callback(done)

    async def aclose(self) -> None:
        workers, self._workers = self._workers, []
        self._idle.clear()
        for worker in workers:
            # Waits for the process to exit (off the loop): none outlives the server.
            await asyncio.to_thread(worker.pool.shutdown, wait=True, cancel_futures=True)


class _Recognition:
    def __init__(self, engine: PocketsphinxSTT) -> None:
        self._engine = engine
        self._jobs: list[Future[Any]] = []
        self._backlog: list[PCM] = []
        self._finishing = False  # finish() was called: from then on it owns the worker
        self._abandoned = False
        self._worker = engine._try_acquire()
        self._waiter: asyncio.Future[Worker] | None = None
        if self._worker is not None:
            self._jobs.append(self._worker.submit(_start))
        else:
            self._waiter = engine._wait()
            self._waiter.add_done_callback(self._on_worker)

    def _on_worker(self, waiter: asyncio.Future[Worker]) -> None:
        if waiter.cancelled():
            return
        worker = self._worker = waiter.result()
        if self._abandoned:
            self._engine._release(worker, healthy=True)
            return
        self._jobs.append(worker.submit(_start))
        for pcm in self._backlog:
            self._jobs.append(worker.submit(_feed, pcm.tobytes()))
        self._backlog.clear()

    def feed(self, pcm: PCM) -> None:
        if self._finishing or self._abandoned or len(pcm) == 0:
            return
        if self._worker is None:
            self._backlog.append(pcm)
            return
        # Finished jobs are forgotten unless they failed; the pool keeps the order.
        self._jobs = [job for job in self._jobs if not _succeeded(job)]
        self._jobs.append(self._worker.submit(_feed, pcm.tobytes()))

    def guess(self, *, urgent: bool) -> None:
        pass  # it decodes as the audio arrives

    def guessed(self, speech_end: int) -> asyncio.Future[str] | None:
        return None

    async def finish(self, speech_end: int | None = None) -> str:
        if self._finishing or self._abandoned:
            raise STTError("this utterance is already over")
        self._finishing = True
        if self._worker is None:
            assert self._waiter is not None
            try:
                await asyncio.shield(self._waiter)
            except asyncio.CancelledError:
                self._abandon()
                raise
        worker = self._worker
        assert worker is not None
        last = worker.submit(_finish)
        self._jobs.append(last)
        try:
            # Shielded: a cancelled wait must not cancel queued jobs, or the utterance would
            # never be ended and the decoder would be left mid-utterance.
            results = await asyncio.shield(
                asyncio.gather(*(asyncio.wrap_future(job) for job in self._jobs))
            )
        except asyncio.CancelledError:
            # The worker ends the utterance by itself and is free again once it has.
            self._engine._release_when_done(worker, last)
            raise
        except Exception as exc:
            self._engine._release(worker, healthy=False)
            raise STTError(f"pocketsphinx failed: {exc}") from exc
        self._engine._release(worker, healthy=True)
        return str(results[-1])

    def cancel(self) -> None:
        if self._finishing or self._abandoned:
            return
        self._abandon()

    def _abandon(self) -> None:
        self._abandoned = True
        self._backlog.clear()
        worker = self._worker
        if worker is not None:
            self._engine._release_when_done(worker, worker.submit(_abort))
        # else: `_on_worker` hands the worker back when it comes


def _succeeded(job: Future[Any]) -> bool:
    return job.done() and not job.cancelled() and job.exception() is None
