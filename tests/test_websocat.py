"""A real third-party client: websocat replays scripts of JSON lines against the server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile

from tests.client import Frame, types
from tests.conftest import ServerProcess
from tests.speech import speak

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


async def test_websocat_drives_a_voice_turn(echo_server: ServerProcess, tmp_path: Path):
    samples, rate = await speak("how are you")
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, samples, rate, subtype="PCM_16")
    script = tmp_path / "voice.jsonl"
    maker = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "voice_lines.py"), str(wav),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await maker.communicate()
    assert maker.returncode == 0
    lines = out.decode()
    script.write_text(lines)
    assert len(lines.splitlines()) > 10  # streamed, 100 ms a frame
    frames = await websocat_turn(echo_server.live_url(), script)
    assert frames.pop(0)["t"] == "conversation"
    assert types(frames)[:2] == ["metrics", "user_msg"]
    assert frames[0]["data"]["input_type"] == "audio"
    assert frames[0]["data"]["stt"] == "pocketsphinx"
    assert frames[1]["data"]["text"]  # whatever a fresh decoder made of it
    assert "response" in types(frames) and frames[-1]["data"] == {"interrupted": False}
