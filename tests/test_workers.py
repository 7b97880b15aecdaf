"""Recogniser worker processes (`engines/stt/workers.py`): the environment they start with."""

from __future__ import annotations

import os

import pytest

from live_server.engines.stt.workers import Worker


def _nothing() -> None:
    pass


def _variable(name: str) -> str | None:
    return os.environ.get(name)


def test_a_worker_starts_with_the_settings_it_was_given(monkeypatch: pytest.MonkeyPatch):
    """Native libraries read their thread settings when they load: the worker's process has
    them from its start; what the server's own environment sets stands; the server's
    environment is left as it was."""
    monkeypatch.setenv("LIVE_TEST_SET_BY_OPERATOR", "operator")
    worker = Worker(_nothing, env={"LIVE_TEST_THREADS": "1", "LIVE_TEST_SET_BY_OPERATOR": "worker"})
    try:
        assert worker.submit(_variable, "LIVE_TEST_THREADS").result(timeout=60) == "1"
        assert worker.submit(_variable, "LIVE_TEST_SET_BY_OPERATOR").result(timeout=60) == (
            "operator"
        )
        assert "LIVE_TEST_THREADS" not in os.environ
    finally:
        worker.pool.shutdown()
