"""The WebSocket routes (and `/healthz`): authenticate, then hand the socket to its protocol's
adapter and a `Session`.

Sockets are accepted before authentication so that a failure can be reported with a close code
and reason (and, on the API-key socket, an `error` frame) instead of a bare HTTP 403.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from live_server.astrbot import frames
from live_server.astrbot.chat import ChatContext
from live_server.astrbot.codec import AstrBotCodec
from live_server.astrbot.socket import AstrBotSocket
from live_server.auth.credentials import check_username, verify_token
from live_server.core.conversation import Conversation
from live_server.core.history import LiveConversation
from live_server.core.session import Session
from live_server.core.session_options import SessionOptions
from live_server.core.voice_input import TurnDetection
from live_server.errors import AuthError, CloseCode, ErrorCode, LiveError, ProtocolError
from live_server.realtime.codec import RealtimeCodec
from live_server.realtime.socket import RealtimeSocket
from live_server.settings import Settings
from live_server.storage import StorageError, claim
from live_server.transport.connection import CLIENT_GONE, Connection, Handler
from live_server.web.state import AppState, api_key, app_state

log = logging.getLogger(__name__)


async def healthz(request: Request) -> JSONResponse:
    state = app_state(request)
    engines = state.engines
    tts = engines.tts.name if engines.tts else None
    stt = engines.stt.name if engines.stt else None
    return JSONResponse({"status": "ok", "llm": engines.llm.name, "tts": tts, "stt": stt})


async def _live_conversation(ws: WebSocket, state: AppState, username: str) -> LiveConversation:
    """The conversation named by the `conversation_id` query parameter, or a new one."""
    conversation_id, resumed = await claim(
        state.store, ws.query_params.get("conversation_id") or None, username
    )
    conversation = await Conversation.load(state.store, state.settings, conversation_id)
    return LiveConversation(conversation_id, resumed, conversation)


def _show_reasoning(ws: WebSocket, settings: Settings) -> bool:
    """The `reasoning` query parameter: `1` asks for the model's reasoning, for display, `0`
    not; without it, the server's `LIVE_SHOW_REASONING`."""
    raw = ws.query_params.get("reasoning")
    if raw is None or raw == "":
        return settings.show_reasoning
    if raw not in ("0", "1"):
        raise ProtocolError("reasoning must be 0 or 1", code=ErrorCode.INVALID_MESSAGE)
    return raw == "1"


def _turn_detection(ws: WebSocket, settings: Settings) -> TurnDetection | None:
    """The `vad` and `sample_rate` query parameters: `vad=server` asks the server to detect
    turns in the audio; `vad=client` (the default) leaves that to the client."""
    vad = ws.query_params.get("vad") or "client"
    if vad not in ("client", "server"):
        raise ProtocolError("vad must be 'client' or 'server'", code=ErrorCode.INVALID_MESSAGE)
    raw = ws.query_params.get("sample_rate")
    rate = frames.DEFAULT_SAMPLE_RATE
    if raw is not None:
        rate = int(raw) if raw.isdigit() and len(raw) <= 6 else 0
        if not frames.MIN_SAMPLE_RATE <= rate <= frames.MAX_SAMPLE_RATE:
            raise ProtocolError(
                f"sample_rate must be an integer from {frames.MIN_SAMPLE_RATE} to "
                f"{frames.MAX_SAMPLE_RATE}",
                code=ErrorCode.INVALID_MESSAGE,
            )
    if vad == "client":
        return None
    return TurnDetection.configured(settings, rate)


async def _run(
    ws: WebSocket,
    state: AppState,
    username: str,
    ct: frames.ChannelType,
    force: bool,
    key_id: str | None = None,
) -> None:
    live: LiveConversation | None = None
    detection: TurnDetection | None = None
    try:
        show_reasoning = _show_reasoning(ws, state.settings)
        if not (force and ct == "chat"):
            detection = _turn_detection(ws, state.settings)
            live = await _live_conversation(ws, state, username)
    except LiveError as exc:
        await _refuse(ws, frames.encode(frames.error_frame(exc.code, exc.message)), exc)
        return
    log.info(
        "%s connected to %s%s",
        username,
        ws.url.path,
        f" (conversation {live.id})" if live is not None else "",
    )
    connection = Connection(ws, AstrBotCodec(), state.settings, name=username)
    session = _session(state, username, live, connection, detection, show_reasoning)
    chat = ChatContext(state.settings, state.engines.llm, state.store, state.hub, state.feed)
    handler = AstrBotSocket(connection, session, chat, channel=ct, force_channel=force)
    await serve(connection, session, handler, state, key_id)
    log.info("%s disconnected", username)


def _session(
    state: AppState,
    username: str,
    live: LiveConversation | None,
    connection: Connection,
    detection: TurnDetection | None = None,
    show_reasoning: bool = False,
) -> Session:
    return Session(
        username=username,
        settings=state.settings,
        engines=state.engines,
        store=state.store,
        feed=state.feed,
        live=live,
        output=connection,
        options=SessionOptions(detection=detection, show_reasoning=show_reasoning),
    )


async def _refuse(ws: WebSocket, error: str, exc: LiveError) -> None:
    """A socket that cannot start: the protocol's error, then the close."""
    await ws.send_text(error)
    failed = isinstance(exc, StorageError)
    code = CloseCode.INTERNAL_ERROR if failed else CloseCode.POLICY_VIOLATION
    await ws.close(code, exc.message[:120])


async def serve(
    connection: Connection,
    session: Session,
    handler: Handler,
    state: AppState,
    key_id: str | None,
) -> None:
    """Run a socket's session over its connection; a revoked key ends it."""
    if key_id is not None:
        state.key_sessions.add(key_id, connection)
    try:
        session.open()
        await connection.serve(handler)
    finally:
        if key_id is not None:
            state.key_sessions.remove(key_id, connection)


SocketEndpoint = Callable[[WebSocket], Awaitable[None]]


def socket_endpoint(endpoint: SocketEndpoint) -> SocketEndpoint:
    """A socket endpoint whose client may leave at any moment, even before it is served (while
    it is authenticated, or told why it is refused): one line in the log, never a traceback."""

    @functools.wraps(endpoint)
    async def run(ws: WebSocket) -> None:
        try:
            await endpoint(ws)
        except CLIENT_GONE:
            log.info("a client of %s went away before its socket was set up", ws.url.path)

    return run


async def _jwt_socket(ws: WebSocket, *, unified: bool) -> None:
    state = app_state(ws)
    await ws.accept()
    try:
        username = verify_token(state.jwt_secret, ws.query_params.get("token"))
    except AuthError as exc:
        await ws.close(CloseCode.POLICY_VIOLATION, exc.message)
        return
    # The unified socket takes the mode from each frame; the live one is live only.
    await _run(ws, state, username, "live", force=not unified)


@socket_endpoint
async def live_chat_ws(ws: WebSocket) -> None:
    await _jwt_socket(ws, unified=False)


@socket_endpoint
async def unified_chat_ws(ws: WebSocket) -> None:
    await _jwt_socket(ws, unified=True)


@socket_endpoint
async def open_live_ws(ws: WebSocket) -> None:
    """The API-key socket: `/api/v1/live/ws` and its alias `/v1/live/ws`."""
    state = app_state(ws)
    await ws.accept()
    try:
        key = await state.keys.verify(api_key(ws))
        username = check_username(ws.query_params.get("username"))
        ct = ws.query_params.get("ct") or "live"
        if ct not in ("live", "chat"):
            raise AuthError("ct must be 'live' or 'chat'", code=ErrorCode.INVALID_MESSAGE)
    except AuthError as exc:
        await ws.send_text(frames.encode(frames.error_frame(exc.code, exc.message)))
        await ws.close(CloseCode.POLICY_VIOLATION, exc.message)
        return
    await _run(ws, state, username, "chat" if ct == "chat" else "live", force=True, key_id=key.id)


@socket_endpoint
async def realtime_ws(ws: WebSocket) -> None:
    """The OpenAI Realtime API socket: `/v1/realtime` (the official SDKs' path)."""
    state = app_state(ws)
    await ws.accept()
    codec = RealtimeCodec(audio=state.engines.tts is not None)
    try:
        key = await state.keys.verify(api_key(ws))
        username = check_username(ws.query_params.get("username") or key.name)
        live = await _live_conversation(ws, state, username)
    except LiveError as exc:
        await _refuse(ws, codec.dump(codec.error(exc.code, exc.message)), exc)
        return
    log.info("%s connected to %s (conversation %s)", username, ws.url.path, live.id)
    connection = Connection(ws, codec, state.settings, name=username)
    session = _session(state, username, live, connection)
    model = ws.query_params.get("model") or state.engines.llm.name
    handler = RealtimeSocket(connection, session, codec, model=model)
    handler.greet()  # `session.created` comes first
    await serve(connection, session, handler, state, key.id)
    log.info("%s disconnected", username)
