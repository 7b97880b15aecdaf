"""Text turns end to end against the real server on its embedded engines (echo + espeak)."""

from __future__ import annotations

import json

from tests.client import (
    decode_wav,
    deltas,
    of,
    open_live,
    recv,
    rms,
    send,
    text_turn,
    types,
    until,
)
from tests.conftest import ServerProcess


async def test_full_text_turn_streams_deltas_sentences_and_speech(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        frames = await text_turn(ws, "Tell me about the weather in Paris, please.")

    assert types(frames)[:2] == ["metrics", "user_msg"]
    assert frames[0]["data"] == {"input_type": "text"}
    assert frames[1]["data"]["text"] == "Tell me about the weather in Paris, please."
    assert isinstance(frames[1]["data"]["ts"], int)
    assert types(frames)[-3:] == ["metrics", "end", "metrics"]
    assert frames[-2]["data"] == {"interrupted": False}
    assert len(of(frames, "end")) == 1
    assert not of(frames, "bot_msg"), "bot_msg is only for replies without audio"

    reply = deltas(frames)
    assert "Tell me about the weather in Paris, please." in reply
    sentences = [f["data"]["text"] for f in of(frames, "bot_text_chunk")]
    assert len(sentences) >= 3
    assert " ".join(sentences) == " ".join(reply.split())

    # Each sentence is followed at once by its audio: a complete WAV with real speech in it.
    for i, f in enumerate(frames):
        if f["t"] == "bot_text_chunk":
            audio = frames[i + 1]
            assert audio["t"] == "response"
            samples, rate = decode_wav(audio["data"])
            assert rate == audio["sample_rate"] and audio["format"] == "wav"
            assert len(samples) / rate > 0.3
            assert rms(samples) > 300, "speech, not silence"
            assert abs(audio["duration_ms"] - 1000 * len(samples) / rate) <= 1

    # Audio interleaves with the text: the first sentence is heard while the model still writes.
    order = types(frames)
    first_audio = order.index("response")
    last_delta = len(order) - 1 - order[::-1].index("bot_delta_chunk")
    assert first_audio < last_delta

    metrics = frames[-3]["data"]
    for key in ("llm_ttft", "llm_total_time", "tts_first_frame_time", "tts_total_time"):
        assert isinstance(metrics[key], float) and metrics[key] >= 0, key
    assert metrics["speak_to_first_frame"] > 0
    assert metrics["tts"] == "piper" and metrics["chat_model"] == "echo"
    assert metrics["llm_finish_reason"] == "stop"
    usage = metrics["llm_usage"]
    assert usage["completion_tokens"] == len(of(frames, "bot_delta_chunk"))
    assert usage["prompt_tokens"] > 8  # the eight words sent, and the system prompt
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # TTS times run from the TTS start, which is after the turn's start.
    assert metrics["tts_total_time"] < frames[-1]["data"]["wav_to_tts_total_time"]
    turn_ids = {f.get("turn_id") for f in frames}
    assert turn_ids == {1}


async def test_chinese_text_is_split_and_spoken(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        frames = await text_turn(ws, "今天天气怎么样？我想去公园散步。")
    sentences = [f["data"]["text"] for f in of(frames, "bot_text_chunk")]
    assert len(sentences) >= 3
    assert all(s[-1] in "。！？；”" for s in sentences[:-1])
    for f in of(frames, "response"):
        samples, _ = decode_wav(f["data"])
        assert rms(samples) > 300


async def test_conversation_continues_across_turns(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        first = await text_turn(ws, "one")
        second = await text_turn(ws, "two")
    # The echo model counts the user messages it was given: history reached it.
    assert "message number 1" in deltas(first)
    assert "message number 2" in deltas(second)
    assert {f.get("turn_id") for f in second} == {2}


async def test_text_input_while_busy_is_refused_and_the_turn_goes_on(echo_server: ServerProcess):
    async with open_live(echo_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "first question"})
        await until(ws, "bot_delta_chunk")
        await send(ws, {"t": "text_input", "text": "second question"})
        frames = await until(ws, "end")
        trailing = await recv(ws)
    errors = of(frames, "error")
    assert len(errors) == 1
    assert errors[0]["code"] == "PROCESSING_ERROR" and errors[0]["data"] == "Session is busy"
    assert "first question" in deltas(frames)
    assert "second question" not in json.dumps(frames)
    assert frames[-1]["data"] == {"interrupted": False}
    assert trailing["t"] == "metrics"


async def test_unified_socket_takes_the_mode_from_each_frame(echo_server: ServerProcess):
    token = echo_server.token("bob")
    async with open_live(f"{echo_server.ws}/api/unified_chat/ws?token={token}") as ws:
        await send(ws, {"ct": "video", "t": "text_input", "text": "hi"})
        err = await recv(ws)
        assert err["t"] == "error" and err["code"] == "INVALID_MESSAGE_FORMAT"
        frames = await text_turn(ws, "hello from the unified socket")
        await send(ws, {"ct": "live", "t": "text_input", "text": "explicitly live"})
        frames2 = await until(ws, "end")
        assert (await recv(ws))["t"] == "metrics"
        await send(ws, {"ct": "chat", "t": "send", "message": [{"type": "plain", "text": "x"}]})
        chat = []
        while not chat or chat[-1].get("type") != "end":
            chat.append(await recv(ws))
    assert "hello from the unified socket" in deltas(frames)
    assert "explicitly live" in deltas(frames2)
    # Chat frames carry `type`, never `t`: a live client cannot mistake them for its own.
    assert all(f["ct"] == "chat" and "t" not in f for f in chat)
    assert "x" in "".join(f["data"] for f in chat if f["type"] == "plain")


async def test_tts_none_sends_the_reply_as_bot_msg(server_factory):
    server = server_factory(LIVE_TTS="none", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        frames = await text_turn(ws, "no voice please")
    assert not of(frames, "response") and not of(frames, "bot_text_chunk")
    assert types(frames)[-4:] == ["metrics", "bot_msg", "end", "metrics"]
    bot_msg = of(frames, "bot_msg")[0]["data"]
    assert bot_msg["text"] == deltas(frames)
    assert "no voice please" in bot_msg["text"]
    assert frames[-4]["data"]["tts"] is None
