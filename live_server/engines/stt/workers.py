"""Recogniser worker processes: each a one-process pool that loads its model once, at start,
and exits when the server is gone, even killed.

Recognisers that keep the GIL while they decode (pocketsphinx), or decode for long (Whisper),
run here rather than on threads of the server's process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def exit_with_parent() -> None:
    """In a worker: exit once the server that started it is gone, instead of idling on."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# The environment is the process's own: workers started at once take turns changing it.
_ENVIRONMENT = threading.Lock()


def _started() -> None:
    """A first job: the process is started to run it."""


class Worker:
    """One process; its jobs run in the order given. `load(*args)` runs in it first. `env` is
    added to the environment it starts with (what the server's own environment does not set):
    native libraries read their thread settings there when they load, before `load` runs."""

    def __init__(
        self, load: Callable[..., None], *args: Any, env: Mapping[str, str] | None = None
    ) -> None:
        self.busy = 0  # jobs given and not yet done (kept by the caller)
        self.pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=load,
            initargs=args,
        )
        added = {k: v for k, v in (env or {}).items() if k not in os.environ}
        with _ENVIRONMENT:
            os.environ.update(added)
            try:
                self.pool.submit(_started)  # a spawning pool starts its process in `submit`
            finally:
                for key in added:
                    del os.environ[key]

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """`fn(*args)` in the process; a broken or closed pool gives a failed future."""
        try:
            return self.pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as exc:
            failed: Future[Any] = Future()
            failed.set_exception(exc)
            return failed
