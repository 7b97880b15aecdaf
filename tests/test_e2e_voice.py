"""Voice turns against the real server: real speech in, recognised text and a full turn out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.client import (
    deltas,
    of,
    open_live,
    pcm_b64,
    recv,
    send,
    text_turn,
    types,
    until,
    voice_frames,
    voice_turn,
)
from tests.conftest import ServerProcess
from tests.speech import PHRASES, calibrate, speak, words_heard
from tests.stubs import StubOpenAI


@pytest.fixture(scope="module")
def voice_server(server_factory) -> ServerProcess:
    """Embedded engines, with one pocketsphinx decoder that has heard a little speech."""
    server = server_factory(LIVE_ECHO_DELAY_MS="20", LIVE_STT_WORKERS="1")
    calibrate(server.live_url())
    return server


def check_voice_turn(frames: list[dict], said: str) -> str:
    """The frame order of a completed voice turn; returns the recognised text."""
    assert types(frames)[:2] == ["metrics", "user_msg"], types(frames)
    opening = frames[0]["data"]
    assert opening["input_type"] == "audio"
    assert opening["stt"] == "pocketsphinx"
    assert opening["wav_assemble_time"] >= 0 and opening["stt_time"] > 0
    heard = frames[1]["data"]["text"]
    assert words_heard(said, heard) >= 0.75, f"said {said!r}, heard {heard!r}"
    assert f'"{heard}"' in deltas(frames)  # the echo model quotes what it was told
    assert of(frames, "response"), "the reply is spoken"
    assert types(frames).count("end") == 1 and types(frames)[-2] == "end"
    closing = of(frames, "metrics")[-2]["data"]
    assert closing["speak_to_first_frame"] > 0
    return str(heard)


@pytest.mark.parametrize("phrase", PHRASES)
async def test_streamed_speech_is_recognised_and_answered(voice_server: ServerProcess, phrase):
    samples, rate = await speak(phrase)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate, chunk_ms=60)
    check_voice_turn(frames, phrase)


@pytest.mark.parametrize("phrase", PHRASES[:2])
async def test_one_frame_holding_the_whole_utterance_works_too(voice_server, phrase):
    samples, rate = await speak(phrase)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate, chunk_ms=None)
    check_voice_turn(frames, phrase)


async def test_48k_audio_is_resampled_for_the_recogniser(voice_server):
    samples, rate = await speak("one two three four five")
    t_out = np.arange(int(len(samples) * 48000 / rate)) / 48000
    up = np.interp(t_out, np.arange(len(samples)) / rate, samples).astype(np.int16)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, up, 48000, chunk_ms=20)
    check_voice_turn(frames, "one two three four five")


async def test_voice_and_text_turns_share_one_conversation(voice_server):
    samples, rate = await speak("good morning")
    async with open_live(voice_server.live_url()) as ws:
        await voice_turn(ws, samples, rate)
        frames = await text_turn(ws, "and now I type")
    assert "message number 2" in deltas(frames)


async def expect_error(ws, frame: dict, code: str) -> dict:
    await send(ws, frame)
    reply = await recv(ws)
    assert reply["t"] == "error" and reply["code"] == code, (frame, reply)
    assert reply["data"]
    return reply


async def test_bad_voice_frames_get_audio_errors_and_the_session_goes_on(voice_server):
    samples, rate = await speak("how are you")
    good = pcm_b64(samples[: rate // 10])
    async with open_live(voice_server.live_url()) as ws:
        await expect_error(ws, {"t": "speaking_part", "data": good}, "AUDIO_ERROR")
        await expect_error(ws, {"t": "end_speaking", "stamp": "x"}, "AUDIO_ERROR")
        await expect_error(ws, {"t": "start_speaking"}, "AUDIO_ERROR")  # no stamp

        await send(ws, {"t": "start_speaking", "stamp": "a", "sample_rate": rate})
        await expect_error(ws, {"t": "speaking_part", "data": "%%% not base64"}, "AUDIO_ERROR")
        odd = await expect_error(ws, {"t": "speaking_part", "data": "AAAA"}, "AUDIO_ERROR")
        assert "even" in odd["data"]
        await expect_error(ws, {"t": "end_speaking", "stamp": "b"}, "AUDIO_ERROR")
        await expect_error(ws, {"t": "end_speaking"}, "AUDIO_ERROR")
        # The segment survived all of that: it still takes audio and makes a turn.
        for frame in voice_frames(samples, rate, "a")[1:]:
            await send(ws, frame)
        frames = await until(ws, "end")
        assert words_heard("how are you", of(frames, "user_msg")[0]["data"]["text"]) >= 0.75
        await recv(ws)  # trailing metrics

        await send(ws, {"t": "start_speaking", "stamp": "empty"})
        empty = await expect_error(ws, {"t": "end_speaking", "stamp": "empty"}, "AUDIO_ERROR")
        assert "no audio" in empty["data"]

        frames = await text_turn(ws, "still fine")
    assert "still fine" in deltas(frames)


async def test_silence_gets_empty_transcript_and_an_end(voice_server):
    silence = np.zeros(16000, dtype=np.int16)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, silence, 16000)
        assert types(frames) == ["error", "end"]
        assert frames[0]["code"] == "EMPTY_TRANSCRIPT"
        assert frames[1]["data"] == {"interrupted": False}
        assert frames[0]["turn_id"] == frames[1]["turn_id"]
        frames = await text_turn(ws, "after the silence")
    assert "after the silence" in deltas(frames)


async def test_a_segment_over_the_limit_is_dropped_and_the_next_one_works(server_factory):
    server = server_factory(LIVE_MAX_SEGMENT_S="2", LIVE_ECHO_DELAY_MS="0")
    samples, rate = await speak("open the door")
    assert len(samples) < 2 * rate  # the phrase itself fits
    noise = np.random.default_rng(1).integers(-3000, 3000, 3 * 16000, dtype=np.int16)
    async with open_live(server.live_url()) as ws:
        for frame in voice_frames(noise, 16000, "long", chunk_ms=200):
            await send(ws, frame)
        error = await recv(ws)
        assert error["t"] == "error" and error["code"] == "LIMIT_EXCEEDED"
        assert "2 s" in error["data"]
        # The rest of the long segment, its end included, is dropped without more frames:
        # the next thing the client hears about is its next segment.
        frames = await voice_turn(ws, samples, rate, stamp="short")
    assert (
        types(frames)[:2] == ["metrics", "user_msg"] and frames[0]["data"]["input_type"] == "audio"
    )
    assert frames[1]["data"]["text"]
    assert types(frames)[-2:] == ["end", "metrics"]


async def test_end_speaking_during_a_reply_is_busy_and_the_reply_goes_on(voice_server):
    samples, rate = await speak("how are you")
    async with open_live(voice_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "talk for a while"})
        await until(ws, "bot_delta_chunk")
        # Speaking while the bot speaks is allowed (barge-in); ending it is not, until `end`.
        for frame in voice_frames(samples, rate, "during"):
            await send(ws, frame)
        frames = await until(ws, "end")
    busy = [f for f in frames if f["t"] == "error"]
    assert [f["code"] for f in busy] == ["PROCESSING_ERROR"]
    assert frames[-1]["data"] == {"interrupted": False}
    assert "talk for a while" in deltas(frames)


async def test_barge_in_interrupt_then_speech_makes_the_next_turn(voice_server):
    samples, rate = await speak("good morning")
    async with open_live(voice_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "tell me a long story"})
        await until(ws, "response")
        frames = voice_frames(samples, rate, "barge")
        await send(ws, frames[0])  # start_speaking: the bot keeps talking
        await send(ws, {"t": "interrupt"})
        # The rest arrives at once: end_speaking may be read before the interrupted turn
        # has ended; it is queued behind that turn's `end`, not refused as busy.
        for frame in frames[1:]:
            await send(ws, frame)
        first = await until(ws, "end")
        assert first[-1]["data"] == {"interrupted": True}
        assert "stop_play" in types(first) and "error" not in types(first)
        second = await until(ws, "end")
        await recv(ws)
    assert second[0]["turn_id"] != first[-1]["turn_id"]
    assert words_heard("good morning", of(second, "user_msg")[0]["data"]["text"]) >= 0.75


async def test_text_right_after_interrupt_is_not_busy(voice_server):
    async with open_live(voice_server.live_url()) as ws:
        await send(ws, {"t": "text_input", "text": "first"})
        await until(ws, "bot_delta_chunk")
        await send(ws, {"t": "interrupt"})
        await send(ws, {"t": "text_input", "text": "second"})
        first = await until(ws, "end")
        second = await until(ws, "end")
    assert first[-1]["data"] == {"interrupted": True}
    assert "error" not in types(first) + types(second)
    assert "second" in deltas(second)
    # Nothing of the second turn came before the first one's end.
    assert {f.get("turn_id") for f in first if "turn_id" in f} == {first[-1]["turn_id"]}


async def test_leaving_mid_segment_or_mid_recognition_frees_the_decoder(voice_server):
    # The server has one decoder: if a departed client kept it, the last turn would never come.
    samples, rate = await speak("how are you")
    frames = voice_frames(samples, rate, "gone")
    async with open_live(voice_server.live_url()) as ws:
        for frame in frames[:-1]:  # no end_speaking: the client just leaves
            await send(ws, frame)
    async with open_live(voice_server.live_url()) as ws:
        for frame in frames:  # leaves while its speech is being recognised
            await send(ws, frame)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate)
    check_voice_turn(frames, "how are you")


async def test_voice_is_refused_clearly_when_stt_is_off(server_factory):
    server = server_factory(LIVE_STT="none", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        error = await expect_error(ws, {"t": "start_speaking", "stamp": 1}, "UNSUPPORTED")
        assert "LIVE_STT" in error["data"]
        await expect_error(ws, {"t": "speaking_part", "data": "AAAA"}, "UNSUPPORTED")
        frames = await text_turn(ws, "typing works")
    assert "typing works" in deltas(frames)


@pytest.fixture(scope="module")
def whisper_server(server_factory, stub: StubOpenAI) -> ServerProcess:
    return server_factory(
        LIVE_STT="openai",
        LIVE_STT_BASE_URL=stub.base_url,
        LIVE_STT_API_KEY="sk-test-stt-key",
        LIVE_STT_LANGUAGE="en",
        LIVE_ECHO_DELAY_MS="0",
    )


async def test_openai_stt_receives_a_valid_16k_wav(whisper_server, llm_stub: StubOpenAI):
    llm_stub.transcript = "hello from the stub"
    noise = np.random.default_rng(2).integers(-2000, 2000, int(1.5 * 48000), dtype=np.int16)
    async with open_live(whisper_server.live_url()) as ws:
        frames = await voice_turn(ws, noise, 48000, chunk_ms=50)
    assert frames[0]["data"]["stt"] == "whisper-1"
    assert of(frames, "user_msg")[0]["data"]["text"] == "hello from the stub"
    [upload] = llm_stub.transcription_requests
    assert upload["format"] == "WAV" and upload["subtype"] == "PCM_16"
    assert upload["sample_rate"] == 16000 and upload["channels"] == 1
    assert upload["seconds"] == pytest.approx(1.5, abs=0.01)
    assert upload["model"] == "whisper-1" and upload["language"] == "en"


async def test_openai_stt_failure_ends_the_turn_with_stt_error(whisper_server, llm_stub):
    llm_stub.transcript = "FAIL"
    noise = np.random.default_rng(3).integers(-2000, 2000, 16000, dtype=np.int16)
    async with open_live(whisper_server.live_url()) as ws:
        frames = await voice_turn(ws, noise, 16000)
        assert types(frames) == ["error", "end"] and frames[0]["code"] == "STT_ERROR"
        frames = await text_turn(ws, "recovered")
    assert "recovered" in deltas(frames)


def children_of(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)}
        time.sleep(0.05)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_decoder_processes_end_with_the_server(server_factory, how):
    server = server_factory(LIVE_STT_WORKERS="1")
    workers = children_of(server.proc.pid)
    assert workers, "the decoder runs in a child process, loaded at start-up"
    getattr(server.proc, how)()
    server.proc.wait(timeout=15)
    assert not wait_gone(workers), "a decoder process outlived its server"
