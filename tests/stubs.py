"""A local OpenAI-compatible server for tests: real HTTP, real SSE, scripted behaviour.

It records every request so tests can check what the live server sent (the conversation
history, the text to speak), and it can fail on cue:
- a user message containing FAIL_MIDSTREAM: the stream breaks after a few tokens;
- FAIL_HTTP: the request is answered with HTTP 500;
- a speech input containing TTS_FAIL: `/v1/audio/speech` answers HTTP 500.
`/v1/audio/transcriptions` reads the uploaded WAV with soundfile, records its format, and answers
with `transcript` (HTTP 400 when the upload is not audio, HTTP 500 when `transcript` is FAIL).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_REPLY = (
    "The first sentence is right here. The second sentence follows it. "
    "A third sentence comes next. Then there is a fourth one. "
    "The fifth sentence is a bit longer than the others. Sentence six. "
    "Sentence number seven arrives. And finally the eighth sentence ends it."
)
SPEECH_RATE = 24000


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return out


def sine_wav(seconds: float = 0.4, rate: int = SPEECH_RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


class MidStreamFailure(Exception):
    pass


@dataclass
class StubOpenAI:
    delay: float = 0.0
    reply: Callable[[list[dict[str, Any]]], str] = lambda messages: DEFAULT_REPLY
    # The exact deltas to stream, when set: text is `content`; a dict is the delta itself (a
    # reasoning model's `{"reasoning_content": ...}`).
    deltas: Callable[[list[dict[str, Any]]], list[str | dict[str, str]]] | None = None
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    speech_requests: list[dict[str, Any]] = field(default_factory=list)
    transcription_requests: list[dict[str, Any]] = field(default_factory=list)
    transcript: str = "hello from the stub"
    auth_headers: list[str] = field(default_factory=list)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    # Like a server with a strict schema (Mistral's, older ones): `stream_options` is refused.
    refuses_stream_options: bool = False
    usages: list[dict[str, int]] = field(default_factory=list)  # what each counted reply took
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
            ]
        )

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.chat_requests.append(body)
        self.auth_headers.append(request.headers.get("authorization", ""))
        last_user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        if "FAIL_HTTP" in last_user:
            return JSONResponse({"error": {"message": "stub says no", "type": "server_error"}}, 500)
        if "HANG" in last_user:  # a model that never answers (until the test is long over)
            await asyncio.sleep(60)
        if "stream_options" in body and self.refuses_stream_options:
            error = {"message": "Extra inputs are not permitted: stream_options"}
            return JSONResponse({"error": error}, 422)
        reply: list[str | dict[str, str]] = (
            self.deltas(body["messages"])
            if self.deltas is not None
            else list(tokens(self.reply(body["messages"])))
        )
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(reply)
        usage = None
        if body.get("stream_options", {}).get("include_usage"):
            said = sum(len(m["content"].split()) for m in body["messages"])
            usage = {"prompt_tokens": said, "completion_tokens": min(limit, len(reply))}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self.usages.append(usage)
        finish = "length" if limit < len(reply) else "stop"
        fail = "FAIL_MIDSTREAM" in last_user
        return StreamingResponse(
            self._sse(body["model"], reply[:limit], finish, usage, fail),
            media_type="text/event-stream",
        )

    async def _sse(
        self,
        model: str,
        reply: list[str | dict[str, str]],
        finish: str,
        usage: dict[str, int] | None,
        fail: bool,
    ) -> AsyncIterator[str]:
        created = int(time.time())
        try:
            for i, tok in enumerate(reply):
                if fail and i == 3:
                    raise MidStreamFailure("the stub broke the stream on purpose")
                if self.delay:
                    await asyncio.sleep(self.delay)
                chunk = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": tok if isinstance(tok, dict) else {"content": tok},
                            "finish_reason": None,
                        }
                    ],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
            }
            yield f"data: {json.dumps(done)}\n\n"
            if usage is not None:  # as OpenAI sends it: a last chunk with no choices
                counted = {**done, "choices": [], "usage": usage}
                yield f"data: {json.dumps(counted)}\n\n"
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            # The client went away mid-stream: that is how an interrupt reaches a provider.
            self.stream_closed.set()
            raise

    async def _speech(self, request: Request) -> Response:
        body = await request.json()
        self.speech_requests.append(body)
        if "TTS_FAIL" in body.get("input", ""):
            return JSONResponse({"error": {"message": "no voice today"}}, 500)
        return Response(sine_wav(), media_type="audio/wav")

    async def _transcribe(self, request: Request) -> Response:
        async with request.form() as form:
            upload = form["file"]
            assert not isinstance(upload, str)
            data = await upload.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            info = soundfile.info(io.BytesIO(data))
        except soundfile.LibsndfileError:
            return JSONResponse({"error": {"message": "not audio"}}, 400)
        self.transcription_requests.append(
            {
                **fields,
                "filename": upload.filename,
                "format": info.format,
                "subtype": info.subtype,
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "seconds": info.frames / info.samplerate,
            }
        )
        if self.transcript == "FAIL":
            return JSONResponse({"error": {"message": "no ears today"}}, 500)
        if self.transcript == "NO_TEXT":  # a 200 that holds no transcript
            return JSONResponse({"result": "ok", "text": None})
        return JSONResponse({"text": self.transcript})


class ThreadedServer:
    """Run an ASGI app with uvicorn on a loopback port in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("stub server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
