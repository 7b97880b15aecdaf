"""The Starlette application: routes, shared engines, and their shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from live_server import endpoints
from live_server.auth import ApiKeyStore, ensure_data_dir, load_jwt_secret
from live_server.providers import build_llm, build_stt, build_tts
from live_server.session import Engines
from live_server.settings import Settings


def create_app(settings: Settings, engines: Engines | None = None) -> Starlette:
    """Build the app. `engines` replaces the configured engines (tests inject fakes)."""
    ensure_data_dir(settings.data_dir)
    if engines is None:
        engines = Engines(llm=build_llm(settings), tts=build_tts(settings), stt=build_stt(settings))
    state = endpoints.AppState(
        settings=settings,
        engines=engines,
        jwt_secret=load_jwt_secret(settings.data_dir, settings.jwt_secret),
        keys=ApiKeyStore(settings.data_dir),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stt = state.engines.stt
        try:
            if stt is not None:
                await stt.warm_up()  # load the recogniser's model now, not on the first turn
            yield
        finally:
            await state.engines.llm.aclose()
            if state.engines.tts is not None:
                await state.engines.tts.aclose()
            if stt is not None:
                await stt.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", endpoints.healthz),
            WebSocketRoute("/api/live_chat/ws", endpoints.live_chat_ws),
            WebSocketRoute("/api/unified_chat/ws", endpoints.unified_chat_ws),
            WebSocketRoute("/api/v1/live/ws", endpoints.open_live_ws),
            WebSocketRoute("/v1/live/ws", endpoints.open_live_ws),
        ],
        lifespan=lifespan,
    )
    app.state.live = state
    return app
