"""The HTTP chat API: a reply streamed as Server-Sent Events, and the stored conversations.

Callers authenticate as on the sockets: an API key (`Authorization: Bearer lsk_...`,
`X-API-Key` or `?api_key=`) with a `username`, or a dashboard JWT (`Bearer` or `?token=`) whose
user it is. Errors are JSON `{"error": {"message", "type", "code"}}`, the OpenAI shape, so one
client handles both this API and `/v1/chat/completions`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response, StreamingResponse

from live_server import wire_json
from live_server.astrbot import frames
from live_server.astrbot.chat import ChatContext, ChatReply
from live_server.astrbot.codec import frames_of, iso_time
from live_server.auth.credentials import KEY_PREFIX, check_username, verify_token
from live_server.core import events
from live_server.errors import AuthError, ErrorCode, LiveError, ProtocolError
from live_server.storage import ConversationInfo, StoredMessage, claim
from live_server.web.state import AppState, api_key, app_state

SSE_BACKLOG = 64
_STATUS = {
    ErrorCode.UNAUTHORIZED: (401, "authentication_error"),
    ErrorCode.FORBIDDEN: (403, "permission_error"),
    ErrorCode.NOT_FOUND: (404, "not_found_error"),
    ErrorCode.LIMIT_EXCEEDED: (413, "invalid_request_error"),
    ErrorCode.LLM_ERROR: (502, "api_error"),
    ErrorCode.STORAGE_ERROR: (500, "server_error"),
    ErrorCode.INTERNAL_ERROR: (500, "server_error"),
}


def error_response(code: ErrorCode, message: str, *, status: int | None = None) -> JSONResponse:
    default, kind = _STATUS.get(code, (400, "invalid_request_error"))
    status = status or default
    body = {"error": {"message": message, "type": kind, "code": code.value}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def check_credential(request: Request, state: AppState) -> str | None:
    """Verify the caller's API key or dashboard JWT (also `?token=`): the JWT's user, or None
    for an API key, which may act for any user."""
    secret = api_key(request) or request.query_params.get("token")
    if secret is None:
        raise AuthError("Missing API key or token")
    if secret.startswith(KEY_PREFIX):
        await state.keys.verify(secret)
        return None
    return verify_token(state.jwt_secret, secret)


async def authenticate(request: Request, state: AppState, username: object = None) -> str:
    """The user a request acts for: the `username` an API key names (from the body, else the
    query), or a JWT's own user (naming another is refused)."""
    given = username if username is not None else request.query_params.get("username")
    user = await check_credential(request, state)
    if user is None:
        return check_username(given if isinstance(given, str) else None)
    if given not in (None, "", user):
        raise LiveError(f"this token is for {user!r}, not {given!r}", code=ErrorCode.FORBIDDEN)
    return user


async def json_body(request: Request, state: AppState) -> dict[str, Any]:
    limit = state.settings.max_frame_bytes
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        raise ProtocolError(f"the body is over {limit} bytes", code=ErrorCode.LIMIT_EXCEEDED)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ProtocolError(f"the body is over {limit} bytes", code=ErrorCode.LIMIT_EXCEEDED)
    body = wire_json.decode_json(raw, "the body")
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    return body


class JSONResponse(_StarletteJSON):
    """A JSON response that any text can be in: a lone surrogate (in a stored message, or a
    model's output) becomes U+FFFD instead of a 500."""

    def render(self, content: Any) -> bytes:
        return wire_json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def sse(data: object) -> str:
    text = data if isinstance(data, str) else wire_json.dumps(data)
    return f"data: {text}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _EventStream:
    """The HTTP caller as the sender of a chat reply: frames wait in a bounded queue."""

    def __init__(self, username: str, *, show_reasoning: bool) -> None:
        self.username = username
        self.show_reasoning = show_reasoning  # `LIVE_SHOW_REASONING`
        self.frames: asyncio.Queue[frames.Frame | None] = asyncio.Queue(SSE_BACKLOG)
        self.closed = False

    async def send(self, frame: frames.Frame) -> None:
        if not self.closed:
            await self.frames.put(frame)

    def close(self) -> None:
        """The caller has gone: drop what waits, which also frees a blocked `put`."""
        self.closed = True
        while not self.frames.empty():
            self.frames.get_nowait()

    def send_now(self, frame: frames.Frame) -> None:  # never bound to a session
        pass


async def chat(request: Request) -> Response:
    """`POST /api/v1/chat`: one reply as Server-Sent Events, ending with its saved id."""
    state = app_state(request)
    try:
        body = await json_body(request, state)
        username = await authenticate(request, state, body.get("username"))
        send = frames.parse_chat_send(body, max_text_chars=state.settings.max_text_chars)
        reply = ChatReply(
            ChatContext(state.settings, state.engines.llm, state.store, state.hub, state.feed),
            sender=_EventStream(username, show_reasoning=state.settings.show_reasoning),
            text=send.text,
            session_id=send.session_id,
            message_id=send.message_id,
            streaming=send.streaming,
            input_type="http",
            claimed=True,
        )
        await claim(state.store, reply.session_id, username)  # refused before streaming
    except LiveError as exc:
        return error_response(exc.code, exc.message)
    return StreamingResponse(
        _reply_events(reply), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _reply_events(reply: ChatReply) -> AsyncIterator[str]:
    stream = reply.sender
    assert isinstance(stream, _EventStream)
    for accepted in frames_of(events.ChatAccepted(*reply.ids)):
        yield sse(accepted)
    task = reply.start()

    async def close_after() -> None:
        await asyncio.gather(task, return_exceptions=True)
        await stream.frames.put(None)

    closer = asyncio.create_task(close_after())
    try:
        while (frame := await stream.frames.get()) is not None:
            yield sse(frame)
    finally:
        # The caller hung up mid-reply: stop it, and save what was written.
        reply.interrupt(sender_left=True)
        stream.close()
        closer.cancel()
        await asyncio.gather(task, closer, return_exceptions=True)


MAX_PAGE = 10_000_000  # beyond any real history, and an offset SQLite can take


def _page(request: Request, default_size: int, max_size: int) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get("page_size", str(default_size)))
    except ValueError:
        raise ProtocolError("page and page_size must be integers") from None
    if not 1 <= page <= MAX_PAGE or not 1 <= size <= max_size:
        raise ProtocolError(f"page must be from 1 to {MAX_PAGE} and page_size from 1 to {max_size}")
    return page, size


def _paging(page: int, size: int, total: int) -> dict[str, int]:
    return {"page": page, "page_size": size, "total": total}


def _conversation_json(info: ConversationInfo) -> dict[str, Any]:
    return {
        "session_id": info.id,
        "title": info.title,
        "created_at": iso_time(info.created_at),
        "updated_at": iso_time(info.updated_at),
        "message_count": info.message_count,
    }


def _message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "created_at": iso_time(m.created_at),
        "input_type": m.input_type,
        "interrupted": m.interrupted,
        "metrics": m.metrics,
    }


async def sessions(request: Request) -> Response:
    """`GET /api/v1/chat/sessions`: the user's conversations, most recent first."""
    state = app_state(request)
    try:
        username = await authenticate(request, state)
        page, size = _page(request, 20, 100)
        items, total = await state.store.conversations(
            username, offset=(page - 1) * size, limit=size
        )
    except LiveError as exc:
        return error_response(exc.code, exc.message)
    sessions = [_conversation_json(i) for i in items]
    return JSONResponse({"sessions": sessions, **_paging(page, size, total)})


async def session_messages(request: Request) -> Response:
    """`GET /api/v1/chat/sessions/{id}/messages`: one conversation's messages, oldest first."""
    state = app_state(request)
    session_id = request.path_params["session_id"]
    try:
        username = await authenticate(request, state)
        page, size = _page(request, 100, 500)
        info = await state.store.get(session_id)
        if info is None or info.username != username:
            # Someone else's conversation is reported as missing: ids cannot be probed.
            raise LiveError(f"no session {session_id!r}", code=ErrorCode.NOT_FOUND)
        messages = await state.store.messages(session_id, offset=(page - 1) * size, limit=size)
    except LiveError as exc:
        return error_response(exc.code, exc.message)
    listed = [_message_json(m) for m in messages]
    paging = _paging(page, size, info.message_count)
    return JSONResponse({**_conversation_json(info), "messages": listed, **paging})
