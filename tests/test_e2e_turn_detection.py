"""Server-side turn detection (`vad=server`): a client with no VAD of its own just streams audio;
the server says when speech starts and stops, runs the turn, and stops the bot when the user
talks over it. Real recordings, the real server; no timing is assumed, since the server's VAD
counts samples, not wall-clock time."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Frame, of, open_live, open_socket, pcm_b64, recv, send, types, until
from tests.conftest import ServerProcess
from tests.speech import SHORT, load, silence, word_error_rate


@pytest.fixture(scope="module")
def server(server_factory) -> ServerProcess:
    # The echo model talks slowly enough (60 ms a word) for speech to come while it talks.
    return server_factory(LIVE_STT="whisper", LIVE_STT_WORKERS="1", LIVE_ECHO_DELAY_MS="60")


def url(server: ServerProcess, query: str = "vad=server") -> str:
    return f"{server.live_url()}&{query}"


async def stream(ws: Any, samples: np.ndarray, rate: int = 16000, chunk_ms: int = 100) -> None:
    step = rate * chunk_ms // 1000
    for i in range(0, len(samples), step):
        await send(ws, {"t": "speaking_part", "data": pcm_b64(samples[i : i + step])})


def spoken() -> np.ndarray:
    samples, _ = load(SHORT)
    return np.concatenate([samples, silence(1.0)])


async def test_a_spoken_turn_with_no_start_or_end_frames(server):
    async with open_live(url(server)) as ws:
        await stream(ws, silence(2.0))  # nobody speaks yet: nothing happens
        await stream(ws, spoken())
        frames = await until(ws, "end")
        await send(ws, {"t": "text_input", "text": "and typed"})
        typed = await until(ws, "end")
    kinds = types(frames)
    assert kinds[0] == "speech_started" and kinds.count("speech_started") == 1
    assert kinds.index("speech_stopped") < kinds.index("user_msg")
    assert frames[kinds.index("speech_started")] == {"t": "speech_started"}
    opening = of(frames, "metrics")[0]["data"]
    assert opening["input_type"] == "audio" and opening["stt"] == "whisper"
    assert word_error_rate(SHORT.text, of(frames, "user_msg")[0]["data"]["text"]) <= 0.1
    assert of(frames, "response") and frames[-1]["data"] == {"interrupted": False}
    assert "message number 2" in "".join(f["data"]["text"] for f in of(typed, "bot_delta_chunk"))


async def test_the_sample_rate_comes_from_the_query(server):
    samples, rate = load(SHORT, rate=48000)
    async with open_live(url(server, "vad=server&sample_rate=48000")) as ws:
        await stream(ws, np.concatenate([samples, silence(1.0, rate)]), rate)
        frames = await until(ws, "end")
    assert word_error_rate(SHORT.text, of(frames, "user_msg")[0]["data"]["text"]) <= 0.1


async def test_silence_and_no_speech_make_no_turn(server):
    async with open_live(url(server)) as ws:
        await stream(ws, silence(3.0))
        await send(ws, {"t": "text_input", "text": "only this"})
        frames = await until(ws, "end")
    assert "speech_started" not in types(frames)
    assert of(frames, "user_msg")[0]["data"]["text"] == "only this"


async def test_talking_over_the_reply_stops_it_and_keeps_what_was_heard(server):
    async with open_live(url(server)) as ws:
        await send(ws, {"t": "text_input", "text": "tell me a long story"})
        reply = await until(ws, "response")  # its audio has started to play
        await stream(ws, spoken())
        cut = await until(ws, "end")
        nxt = await until(ws, "end")
        conversation = ws.conversation["id"]
    assert "stop_play" in types(cut) and cut[-1]["data"] == {"interrupted": True}
    assert cut[-1]["turn_id"] == reply[0]["turn_id"]
    # The user's words became the next turn, after the cut one had ended.
    assert word_error_rate(SHORT.text, of(nxt, "user_msg")[0]["data"]["text"]) <= 0.1
    assert nxt[-1]["data"] == {"interrupted": False}

    # The client sent no played_ms: the server estimated it from when the audio started to go
    # out, so the stored reply holds only the part likely heard, not the whole of it.
    saved = await messages(server, conversation)
    first = saved[1]
    assert first["role"] == "assistant" and first["interrupted"] is True
    assert "message number" not in first["content"]
    assert first["metrics"]["played_ms"] >= 0 and first["metrics"]["played_ms_estimated"] is True


async def test_a_short_sound_over_the_reply_does_not_stop_it(server):
    samples, _ = load(SHORT)
    blip = samples[int(1.2 * 16000) : int(1.4 * 16000)]  # 200 ms of speech: under the 300 ms
    async with open_live(url(server)) as ws:
        await send(ws, {"t": "text_input", "text": "keep talking"})
        await until(ws, "response")
        await stream(ws, np.concatenate([blip, silence(1.0)]))
        frames = await until(ws, "end")
        await send(ws, {"t": "text_input", "text": "and then"})
        after = await until(ws, "end")
    assert "stop_play" not in types(frames)
    assert frames[-1]["data"] == {"interrupted": False}
    kinds = types(frames)
    assert kinds.index("speech_started") < kinds.index("speech_stopped")
    # The blip made no turn of its own: the next typed turn is the second message.
    assert "message number 2" in "".join(f["data"]["text"] for f in of(after, "bot_delta_chunk"))
    assert [f["data"]["text"] for f in of(after, "user_msg")] == ["and then"]


async def test_start_and_end_frames_on_a_server_vad_socket_mark_a_segment(server):
    samples, _ = load(SHORT)
    async with open_live(url(server)) as ws:
        # Ended by the client before the server heard the silence: one ordinary turn.
        await send(ws, {"t": "start_speaking", "stamp": "a"})
        await stream(ws, samples)
        await send(ws, {"t": "end_speaking", "stamp": "a"})
        first = await until(ws, "end")
        await recv(ws)  # trailing metrics
        # Ended by the server's turn detection first: the client's late end needs no answer.
        await send(ws, {"t": "start_speaking", "stamp": "b"})
        await stream(ws, spoken())
        await send(ws, {"t": "end_speaking", "stamp": "b"})
        second = await until(ws, "end")
        await recv(ws)
        await send(ws, {"t": "text_input", "text": "still here"})
        third = await until(ws, "end")
    for frames in (first, second):
        assert "error" not in types(frames)
        assert word_error_rate(SHORT.text, of(frames, "user_msg")[0]["data"]["text"]) <= 0.1
    assert "error" not in types(third)


@pytest.mark.parametrize(
    "query",
    ["vad=browser", "vad=server&sample_rate=100", "vad=server&sample_rate=fast", "sample_rate=1e9"],
)
async def test_bad_turn_detection_parameters_are_refused(server, query):
    async with open_socket(url(server, query)) as ws:
        error = await recv(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert error["t"] == "error" and error["code"] == "INVALID_MESSAGE"
    assert "vad" in error["data"] or "sample_rate" in error["data"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def messages(server: ServerProcess, conversation: str) -> list[Frame]:
    api = f"{server.http}/api/v1/chat/sessions/{conversation}/messages"
    async with httpx.AsyncClient() as http:
        response = await http.get(api, params={"token": server.token()})
    assert response.status_code == 200
    result: list[Frame] = response.json()["messages"]
    return result
