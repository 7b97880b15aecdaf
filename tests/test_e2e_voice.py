"""Voice turns against the real server, on recordings of real people: Whisper recognition with
the server's VAD, speculative decoding, partial transcripts, and the errors around them."""

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
from tests.speech import (
    JFK,
    RECORDINGS,
    SHORT,
    Recording,
    load,
    noise,
    silence,
    word_error_rate,
    words,
)
from tests.stubs import StubOpenAI

WHISPER = {"LIVE_STT": "whisper", "LIVE_STT_WORKERS": "1"}


@pytest.fixture(scope="module")
def voice_server(server_factory) -> ServerProcess:
    """The embedded engines: Whisper tiny.en, Piper, the echo model."""
    return server_factory(LIVE_ECHO_DELAY_MS="0", **WHISPER)


def check_voice_turn(frames: list[dict], recording: Recording) -> str:
    """The frame order of a completed voice turn; returns the recognised text."""
    opening = frames[types(frames).index("metrics")]["data"]
    assert opening["input_type"] == "audio"
    assert opening["stt"] == "whisper"
    assert opening["wav_assemble_time"] >= 0 and opening["stt_time"] >= 0
    [user_msg] = of(frames, "user_msg")
    heard = user_msg["data"]["text"]
    assert word_error_rate(recording.text, heard) <= 0.1, f"heard {heard!r}"
    assert f'"{heard}"' in deltas(frames)  # the echo model quotes what it was told
    assert of(frames, "response"), "the reply is spoken"
    assert types(frames).count("end") == 1 and types(frames)[-2] == "end"
    return str(heard)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda r: r.file)
async def test_real_speech_streamed_is_recognised_and_answered(voice_server, recording):
    samples, rate = load(recording, rate=None)  # the recording's own rate: 44.1 kHz or 16 kHz
    samples = np.concatenate([samples, silence(0.7, rate)])
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate, chunk_ms=100)
    check_voice_turn(frames, recording)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda r: r.file)
async def test_one_frame_holding_the_whole_utterance(voice_server, recording):
    samples, rate = load(recording)
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate, chunk_ms=None)
    check_voice_turn(frames, recording)


async def test_partial_transcripts_come_while_the_user_speaks(voice_server):
    samples, rate = load(JFK)
    frames = voice_frames(samples, rate, "partial")
    half = len(frames) // 2
    async with open_live(voice_server.live_url()) as ws:
        for frame in frames[:half]:
            await send(ws, frame)
        # Five seconds of speech are in: the words so far arrive before the user is done.
        [partial] = of(await until(ws, "user_partial"), "user_partial")
        assert set(partial) == {"t", "data"} and set(partial["data"]) == {"text"}
        so_far = words(partial["data"]["text"])
        assert so_far and so_far == words(JFK.text)[: len(so_far)], partial
        for frame in frames[half:]:
            await send(ws, frame)
        turn = await until(ws, "end")
    # Any further partial comes before the final transcript, never after it, and the last
    # one (decoded while the speaker paused at the end) is the transcript itself.
    kinds = types(turn)
    assert "user_partial" not in kinds[kinds.index("user_msg") :]
    final = of(turn, "user_msg")[0]["data"]["text"]
    assert word_error_rate(JFK.text, final) <= 0.1
    partials = [f["data"]["text"] for f in of(turn, "user_partial")]
    if partials:
        assert partials[-1] == final


@pytest.mark.parametrize(
    "audio",
    [silence(1.5), noise(1.5), noise(2.0, level=6000, seed=2)],
    ids=["silence", "hiss", "loud-noise"],
)
async def test_silence_and_noise_give_empty_transcript_never_invented_words(voice_server, audio):
    async with open_live(voice_server.live_url()) as ws:
        frames = await voice_turn(ws, audio, 16000)
        assert types(frames) == ["error", "end"], frames
        assert frames[0]["code"] == "EMPTY_TRANSCRIPT"
        assert frames[1]["data"] == {"interrupted": False}
        assert frames[0]["turn_id"] == frames[1]["turn_id"]
        frames = await text_turn(ws, "after the silence")
    assert "after the silence" in deltas(frames)
    assert "message number 1 from you" in deltas(frames), "nothing was kept of the empty turn"


async def test_voice_and_text_turns_share_one_conversation(voice_server):
    samples, rate = load(SHORT)
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
    samples, rate = load(SHORT)
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
        heard = of(frames, "user_msg")[0]["data"]["text"]
        assert word_error_rate(SHORT.text, heard) <= 0.1
        await recv(ws)  # trailing metrics

        await send(ws, {"t": "start_speaking", "stamp": "empty"})
        empty = await expect_error(ws, {"t": "end_speaking", "stamp": "empty"}, "AUDIO_ERROR")
        assert "no audio" in empty["data"]

        frames = await text_turn(ws, "still fine")
    assert "still fine" in deltas(frames)


async def test_a_segment_over_the_limit_is_dropped_and_the_next_one_works(server_factory):
    server = server_factory(LIVE_MAX_SEGMENT_S="4", LIVE_ECHO_DELAY_MS="0", **WHISPER)
    samples, rate = load(SHORT)
    assert len(samples) < 4 * rate  # the recording itself fits
    long = np.concatenate([samples, samples])
    async with open_live(server.live_url()) as ws:
        for frame in voice_frames(long, 16000, "long", chunk_ms=200):
            await send(ws, frame)
        error = await recv(ws)
        assert error["t"] == "error" and error["code"] == "LIMIT_EXCEEDED"
        assert "4 s" in error["data"]
        # The rest of the long segment, its end included, is dropped without more frames:
        # the next thing the client hears about is its next segment.
        frames = await voice_turn(ws, samples, rate, stamp="short")
    assert types(frames)[:2] == ["metrics", "user_msg"]
    assert word_error_rate(SHORT.text, frames[1]["data"]["text"]) <= 0.1
    assert types(frames)[-2:] == ["end", "metrics"]


async def test_end_speaking_during_a_reply_is_busy_and_the_reply_goes_on(server_factory):
    server = server_factory(LIVE_ECHO_DELAY_MS="40", **WHISPER)
    samples, rate = load(SHORT)
    async with open_live(server.live_url()) as ws:
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
    samples, rate = load(SHORT)
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
        assert "error" not in types(first)
        second = await until(ws, "end")
        await recv(ws)
    assert second[-1]["turn_id"] != first[-1]["turn_id"]
    assert word_error_rate(SHORT.text, of(second, "user_msg")[0]["data"]["text"]) <= 0.1


async def test_leaving_mid_segment_or_mid_recognition_frees_the_decoder(voice_server):
    # The server has one worker: if a departed client kept it, the last turn would never come.
    samples, rate = load(SHORT)
    frames = voice_frames(samples, rate, "gone")
    async with open_live(voice_server.live_url()) as ws:
        for frame in frames[:-1]:  # no end_speaking: the client just leaves
            await send(ws, frame)
    async with open_live(voice_server.live_url()) as ws:
        for frame in frames:  # leaves while its speech is being recognised
            await send(ws, frame)
    async with open_live(voice_server.live_url()) as ws:
        turn = await voice_turn(ws, samples, rate)
    check_voice_turn(turn, SHORT)


async def test_voice_is_refused_clearly_when_stt_is_off(server_factory):
    server = server_factory(LIVE_STT="none", LIVE_ECHO_DELAY_MS="0")
    async with open_live(server.live_url()) as ws:
        error = await expect_error(ws, {"t": "start_speaking", "stamp": 1}, "UNSUPPORTED")
        assert "LIVE_STT" in error["data"]
        await expect_error(ws, {"t": "speaking_part", "data": "AAAA"}, "UNSUPPORTED")
        frames = await text_turn(ws, "typing works")
    assert "typing works" in deltas(frames)


async def test_pocketsphinx_stays_selectable(server_factory):
    server = server_factory(LIVE_STT="pocketsphinx", LIVE_STT_WORKERS="1", LIVE_ECHO_DELAY_MS="0")
    samples, rate = load(SHORT)
    async with open_live(server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate)
    # pocketsphinx mishears real voices (that is why Whisper is the default): this checks that
    # it runs a turn through, not what it heard.
    assert frames[0]["data"]["stt"] == "pocketsphinx"
    assert of(frames, "user_msg")[0]["data"]["text"]
    assert types(frames)[-2:] == ["end", "metrics"]


@pytest.fixture(scope="module")
def remote_stt_server(server_factory, stub: StubOpenAI) -> ServerProcess:
    return server_factory(
        LIVE_STT="openai",
        LIVE_STT_BASE_URL=stub.base_url,
        LIVE_STT_API_KEY="sk-test-stt-key",
        LIVE_STT_LANGUAGE="en",
        LIVE_ECHO_DELAY_MS="0",
    )


async def test_openai_stt_receives_a_valid_16k_wav(remote_stt_server, llm_stub: StubOpenAI):
    llm_stub.transcript = "hello from the stub"
    samples, rate = load(JFK, rate=48000)
    async with open_live(remote_stt_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate, chunk_ms=50)
    assert frames[0]["data"]["stt"] == "whisper-1"
    assert of(frames, "user_msg")[0]["data"]["text"] == "hello from the stub"
    [upload] = llm_stub.transcription_requests
    assert upload["format"] == "WAV" and upload["subtype"] == "PCM_16"
    assert upload["sample_rate"] == 16000 and upload["channels"] == 1
    assert upload["seconds"] == pytest.approx(len(samples) / rate, abs=0.01)
    assert upload["model"] == "whisper-1" and upload["language"] == "en"


async def test_openai_stt_is_not_asked_about_a_segment_without_speech(
    remote_stt_server, llm_stub: StubOpenAI
):
    async with open_live(remote_stt_server.live_url()) as ws:
        frames = await voice_turn(ws, noise(1.5), 16000)
    assert types(frames) == ["error", "end"] and frames[0]["code"] == "EMPTY_TRANSCRIPT"
    assert llm_stub.transcription_requests == []


@pytest.mark.parametrize("answer", ["FAIL", "NO_TEXT"])
async def test_an_stt_failure_or_an_answer_without_a_transcript_is_stt_error(
    remote_stt_server, llm_stub, answer: str
):
    """A 500, or a 200 with no "text" string: the turn ends with STT_ERROR, never with the
    user saying "None", and the socket goes on."""
    llm_stub.transcript = answer
    samples, rate = load(SHORT)
    async with open_live(remote_stt_server.live_url()) as ws:
        frames = await voice_turn(ws, samples, rate)
        assert types(frames) == ["error", "end"] and frames[0]["code"] == "STT_ERROR"
        if answer == "NO_TEXT":
            assert '"text"' in frames[0]["data"]
        # Nothing was kept of the failed turn: the echo model, which counts the user's
        # messages, sees this one as the first.
        history = await text_turn(ws, "recovered")
    assert "message number 1 from you" in deltas(history) and "None" not in deltas(history)
    assert "recovered" in deltas(history)


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
def test_recogniser_processes_end_with_the_server(server_factory, how):
    server = server_factory(LIVE_STT="whisper", LIVE_STT_WORKERS="2")
    workers = children_of(server.proc.pid)
    assert len(workers) >= 2, "each Whisper worker is a child process, loaded at start-up"
    getattr(server.proc, how)()
    server.proc.wait(timeout=15)
    assert not wait_gone(workers), "a recogniser process outlived its server"
