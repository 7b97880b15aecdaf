"""Settings from the environment, credentials, and the conversation history, without a server."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from live_server.auth.credentials import (
    ApiKeyStore,
    KeyFile,
    KeyRecords,
    issue_token,
    load_jwt_secret,
    verify_token,
)
from live_server.core.conversation import Conversation, Exchange, join_sentences
from live_server.errors import AuthError, ConfigError
from live_server.settings import Settings
from live_server.storage.postgres import Database, PostgresKeys


def settings(**env: str) -> Settings:
    return Settings.from_env({"LIVE_DATA_DIR": "/tmp/x", **env})


def test_defaults_run_offline() -> None:
    s = settings()
    assert (s.llm, s.tts, s.stt, s.echo_delay_ms) == ("local", "piper", "whisper", 30)
    assert (s.whisper_model, s.piper_voice) == (None, None)  # the packaged models
    assert (s.vad_silence_ms, s.barge_in_ms) == (700, 300)
    assert s.data_dir == Path("/tmp/x")


def test_reasoning_settings() -> None:
    s = settings()
    assert (s.llm_reasoning_effort, s.llm_extra_body, s.llm_thinks_first) == (None, None, False)
    assert s.local_reasoning is False  # the embedded model answers without thinking first
    s = settings(
        LIVE_LLM_REASONING_EFFORT="none",
        LIVE_LLM_EXTRA_BODY='{"chat_template_kwargs": {"enable_thinking": false}}',
        LIVE_LLM_THINKS_FIRST="1",
    )
    assert s.llm_reasoning_effort == "none" and s.llm_thinks_first
    assert s.llm_extra_body == {"chat_template_kwargs": {"enable_thinking": False}}
    for bad in ("[1]", "think: false", "null"):
        with pytest.raises(ConfigError, match="LIVE_LLM_EXTRA_BODY must be a JSON object"):
            settings(LIVE_LLM_EXTRA_BODY=bad)


def test_only_an_stt_key_of_its_own_sends_speech_off_the_machine() -> None:
    assert settings(OPENAI_API_KEY="sk-1").stt == "whisper"
    s = settings(LIVE_STT_API_KEY="sk-3", LIVE_STT_LANGUAGE="de")
    assert (s.stt, s.stt_language) == ("openai", "de") and "sk-3" not in repr(s)
    assert settings(LIVE_STT="openai", OPENAI_API_KEY="sk-1").stt_api_key == "sk-1"
    with pytest.raises(ConfigError, match="LIVE_STT=openai"):
        settings(LIVE_STT="openai")
    with pytest.raises(ConfigError, match="LIVE_STT"):
        settings(LIVE_STT="whisper.cpp")
    with pytest.raises(ConfigError, match="LIVE_MAX_SEGMENT_S"):
        settings(LIVE_MAX_SEGMENT_S="0")


def test_a_key_switches_the_default_llm_to_openai() -> None:
    assert settings(OPENAI_API_KEY="sk-1").llm == "openai"
    assert settings(LIVE_LLM_API_KEY="sk-2").llm == "openai"
    assert settings(LIVE_LLM_API_KEY="sk-2", LIVE_LLM="echo").llm == "echo"
    s = settings(LIVE_LLM_API_KEY="sk-2")
    assert s.tts_api_key == "sk-2" and "sk-2" not in repr(s)


@pytest.mark.parametrize(
    "env",
    [
        {"LIVE_LLM": "gpt"},
        {"LIVE_TTS": "coqui"},
        {"LIVE_VAD_SILENCE_MS": "50"},
        {"LIVE_BARGE_IN_MS": "-5"},
        {"LIVE_TURN_PATIENCE_MS": "-1"},
        {"LIVE_LLM": "openai"},
        {"LIVE_TTS": "openai"},
        {"LIVE_PORT": "eighty"},
        {"LIVE_ECHO_DELAY_MS": "-1"},
        {"LIVE_MAX_TEXT_CHARS": "0"},
        {"LIVE_JWT_SECRET": "short"},
        {"LIVE_WS_DEFLATE": "maybe"},
        {"LIVE_HISTORY_MAX_MESSAGES": "1"},
    ],
)
def test_bad_settings_fail_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**env)
    assert next(iter(env)) in str(info.value)


def test_typed_values() -> None:
    s = settings(LIVE_PORT="9000", LIVE_SEND_TIMEOUT_S="2.5", LIVE_WS_DEFLATE="yes")
    assert (s.port, s.send_timeout_s, s.ws_deflate) == (9000, 2.5, True)


def test_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_jwt_secret(tmp_path, None)
    assert load_jwt_secret(tmp_path, None) == first and len(first) >= 48
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
    assert load_jwt_secret(tmp_path, "c" * 40) == "c" * 40


def _secret_at_once(data_dir: Path, start: Any) -> str:
    start.wait()
    return load_jwt_secret(data_dir, None)


def test_processes_starting_together_keep_one_whole_secret(tmp_path: Path) -> None:
    """Servers started at the same moment on a new data dir: none reads a secret still being
    written (an empty HMAC key stopped one at start), and all keep the same one."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(6) as pool:
        for round_ in range(10):
            data_dir = tmp_path / f"data-{round_}"
            start = manager.Barrier(6)
            secrets = pool.starmap(_secret_at_once, [(data_dir, start)] * 6)
            assert len(set(secrets)) == 1 and len(secrets[0]) >= 48, secrets


def test_tokens(tmp_path: Path) -> None:
    secret = "s" * 40
    assert verify_token(secret, issue_token(secret, "ann", 60)) == "ann"
    expired = jwt.encode({"username": "ann", "exp": int(time.time()) - 1}, secret, "HS256")
    for token, reason in [
        (None, "Missing"),
        ("", "Missing"),
        (expired, "expired"),
        ("x.y.z", "Invalid"),
    ]:
        with pytest.raises(AuthError, match=reason):
            verify_token(secret, token)
    with pytest.raises(AuthError, match="Invalid"):
        verify_token(
            secret, jwt.encode({"username": "a b", "exp": time.time() + 60}, secret, "HS256")
        )


@pytest.fixture(params=["file", "postgres"])
async def key_records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyRecords]:
    """API keys kept in the data dir's keys file, or in PostgreSQL."""
    if request.param == "file":
        yield KeyFile(tmp_path)
        return
    db = Database(request.getfixturevalue("postgres").database())
    await db.open()
    try:
        yield PostgresKeys(db)
    finally:
        await db.aclose()


async def test_api_keys(key_records: KeyRecords) -> None:
    store = ApiKeyStore(key_records)
    key, record = await store.create("ci")
    assert (await store.verify(key)).id == record.id
    assert all(r.key_hash != key and key not in r.key_hash for r in await store.list())
    assert await key_records.valid_ids() == {record.id}
    assert await store.revoke(record.id) and not await store.revoke(record.id)
    with pytest.raises(AuthError, match="Invalid API key"):
        await store.verify(key)
    with pytest.raises(AuthError, match="Missing"):
        await store.verify(None)
    with pytest.raises(AuthError, match="Invalid API key"):
        await store.verify(key + "x")
    scoped, _ = await store.create("no-chat", scopes=["admin"])
    with pytest.raises(AuthError, match="scope"):
        await store.verify(scoped)
    assert await key_records.valid_ids() == {r.id for r in await store.list() if not r.revoked}


async def test_keys_made_elsewhere_reach_the_keys_file_at_once(tmp_path: Path) -> None:
    store = ApiKeyStore(KeyFile(tmp_path))
    key, record = await store.create("ci")
    assert key not in (tmp_path / "api_keys.json").read_text()
    other = ApiKeyStore(KeyFile(tmp_path))  # another process, e.g. the CLI
    assert await other.revoke(record.id)
    with pytest.raises(AuthError, match="Invalid API key"):
        await store.verify(key)


def test_history_is_bounded_and_marks_interruptions() -> None:
    convo = Conversation(system_prompt="sys", max_messages=5, max_chars=10_000)
    for i in range(5):
        convo.record(Exchange(f"u{i}", f"a{i}"))
    convo.record(Exchange("u5", "heard part", interrupted=True))
    messages = convo.messages_for("now")
    assert len(messages) == 1 + 4 + 1
    assert [m["content"] for m in messages] == [
        "sys",
        "u4",
        "a4",
        "u5",
        "heard part [interrupted by the user]",
        "now",
    ]


def test_join_sentences() -> None:
    assert join_sentences(["Hello there.", "How are you?"]) == "Hello there. How are you?"
    assert join_sentences(["你好。", "今天好吗？"]) == "你好。今天好吗？"
    assert join_sentences(["OK.", "然后呢？"]) == "OK.然后呢？"
    assert join_sentences([]) == ""
