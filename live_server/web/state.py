"""What the whole app shares: the engines, the stores, the hubs. The bottom layer that every
endpoint module reads, and that imports none of them."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from live_server.astrbot.hub import ChatHub
from live_server.auth.accounts import UserStore
from live_server.auth.credentials import ApiKeyStore
from live_server.core.conversation import ConversationFeed
from live_server.engines import Engines
from live_server.settings import Settings
from live_server.storage import Store
from live_server.web.revocation import KeySessions


@dataclass
class AppState:
    settings: Settings
    engines: Engines
    jwt_secret: str
    keys: ApiKeyStore
    store: Store
    hub: ChatHub
    feed: ConversationFeed
    users: UserStore
    key_sessions: KeySessions


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.live
    return state


def api_key(conn: HTTPConnection) -> str | None:
    """The key from `Authorization: Bearer`, `X-API-Key` or the `api_key` query parameter."""
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return conn.headers.get("x-api-key") or conn.query_params.get("api_key")
