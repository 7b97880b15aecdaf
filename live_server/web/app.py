"""The Starlette application: routes, shared engines, and their shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import cast

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from live_server.astrbot.hub import ChatHub
from live_server.audio.vad import ScorerPool
from live_server.auth.accounts import LOGIN_WINDOW_S
from live_server.auth.credentials import ensure_data_dir, load_jwt_secret, new_jwt_secret
from live_server.auth.throttle import RedisThrottle
from live_server.bus import RedisBus
from live_server.core.conversation import ConversationFeed
from live_server.engines import Engines, build_end_model, build_llm, build_stt, build_tts
from live_server.settings import Settings
from live_server.storage.backends import build_backends
from live_server.web import chat_api, chat_completions, page, socket_routes
from live_server.web.revocation import KeySessions
from live_server.web.state import AppState


def from_environment() -> Starlette:
    """The app as each worker of `serve --workers N` builds it."""
    from live_server import logs

    settings = Settings.from_env()
    logs.configure(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings, engines: Engines | None = None) -> Starlette:
    """Build the app. `engines` replaces the configured engines (tests inject fakes)."""
    ensure_data_dir(settings.data_dir)
    if engines is None:
        stt = build_stt(settings)
        llm = build_llm(settings)
        engines = Engines(
            llm=llm,
            tts=build_tts(settings),
            stt=stt,
            vad=ScorerPool.silero() if stt is not None else None,
            end_model=build_end_model(settings, llm),
            language=settings.stt_language,
        )
    bus, throttle = None, None
    if settings.redis_url is not None:
        bus = RedisBus(settings.redis_url)
        throttle = RedisThrottle.from_url(settings.redis_url, LOGIN_WINDOW_S)
    backends = build_backends(settings, throttle)
    state = AppState(
        settings=settings,
        engines=engines,
        # Kept in the database, the secret is read at start-up (`lifespan`); until then it is
        # one nobody knows, so that nothing is ever checked against a guessable key.
        jwt_secret=(
            new_jwt_secret()
            if settings.database_url is not None and settings.jwt_secret is None
            else load_jwt_secret(settings.data_dir, settings.jwt_secret)
        ),
        keys=backends.keys,
        key_sessions=KeySessions(backends.keys),
        store=backends.store,
        hub=ChatHub(bus),
        feed=ConversationFeed(bus),
        users=backends.users,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stt = state.engines.stt
        if bus is not None:
            await bus.open()
        await state.store.open()
        try:
            state.jwt_secret = await backends.jwt_secret(settings)
            if stt is not None:
                await stt.warm_up()  # load the recogniser's model now, not on the first turn
            if state.engines.vad is not None:
                await asyncio.to_thread(state.engines.vad.warm_up)
            # What start-up made lives as long as the process: out of the collector's sight,
            # so that its full passes under load walk only what the sockets made.
            gc.freeze()
            revocations = asyncio.create_task(state.key_sessions.watch(), name="live-revocations")
            try:
                yield
            finally:
                revocations.cancel()
                await asyncio.gather(revocations, return_exceptions=True)
        finally:
            await state.engines.llm.aclose()
            end_model = state.engines.end_model
            if end_model is not None and end_model is not cast(object, state.engines.llm):
                await end_model.aclose()
            if state.engines.tts is not None:
                await state.engines.tts.aclose()
            if stt is not None:
                await stt.aclose()
            await state.store.aclose()
            if bus is not None:
                await bus.aclose()
            if throttle is not None:
                await throttle.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", socket_routes.healthz),
            Route("/api/v1/chat", chat_api.chat, methods=["POST"]),
            Route("/api/v1/chat/sessions", chat_api.sessions, methods=["GET"]),
            Route(
                "/api/v1/chat/sessions/{session_id}/messages",
                chat_api.session_messages,
                methods=["GET"],
            ),
            Route("/v1/chat/completions", chat_completions.chat_completions, methods=["POST"]),
            WebSocketRoute("/api/live_chat/ws", socket_routes.live_chat_ws),
            WebSocketRoute("/api/unified_chat/ws", socket_routes.unified_chat_ws),
            # The paths AstrBot 4.29's dashboard connects to: the same sockets.
            WebSocketRoute("/api/v1/live-chat/ws", socket_routes.live_chat_ws),
            WebSocketRoute("/api/v1/unified-chat/ws", socket_routes.unified_chat_ws),
            WebSocketRoute("/api/v1/live/ws", socket_routes.open_live_ws),
            WebSocketRoute("/v1/live/ws", socket_routes.open_live_ws),
            # The OpenAI Realtime API, where its SDKs connect (`<base_url>/realtime`).
            WebSocketRoute("/v1/realtime", socket_routes.realtime_ws),
            WebSocketRoute("/api/v1/realtime", socket_routes.realtime_ws),
            # Last: the page is mounted at "/".
            *page.routes(settings.web_dir or page.DEFAULT_WEB_DIR),
        ],
        lifespan=lifespan,
    )
    app.state.live = state
    return app
