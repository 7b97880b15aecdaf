"""The browser page: its files, the voice-detection assets it needs, and logging in.

Everything the page loads comes from this server (no CDN): the page from `web/public/`, Silero
VAD and ONNX Runtime from the npm packages installed in `web/node_modules/` (`npm ci` in
`web/`). `live-server serve` prints a URL that signs the local user in; accounts for longer use
log in with `POST /api/auth/login`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from live_server.astrbot.codec import iso_time
from live_server.auth.credentials import issue_token
from live_server.errors import AuthError, ErrorCode, LiveError, ProtocolError
from live_server.web.chat_api import error_response, json_body
from live_server.web.state import app_state

log = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# URL prefix -> the npm package folder served there.
VENDOR = {
    "/vendor/vad": ("@ricky0123", "vad-web", "dist"),
    "/vendor/ort": ("onnxruntime-web", "dist"),
}


def vendor_missing(web_dir: Path) -> list[str]:
    """The npm packages the page needs that are not installed."""
    return [
        "/".join(parts[:-1])
        for parts in VENDOR.values()
        if not (web_dir / "node_modules" / Path(*parts)).is_dir()
    ]


def routes(web_dir: Path) -> list[BaseRoute]:
    out: list[BaseRoute] = [Route("/api/auth/login", login, methods=["POST"])]
    for prefix, parts in VENDOR.items():
        folder = web_dir / "node_modules" / Path(*parts)
        if folder.is_dir():
            out.append(Mount(prefix, app=StaticFiles(directory=folder)))
        else:  # checked once: `npm ci` while the server runs needs a restart to be served
            out.append(Mount(prefix, app=_not_installed("/".join(parts[:-1]), web_dir)))
    public = web_dir / "public"
    if public.is_dir():
        out.append(Mount("/", app=StaticFiles(directory=public, html=True)))
    else:
        out.append(Route("/", _no_page))
    return out


def _not_installed(package: str, web_dir: Path) -> ASGIApp:
    response = PlainTextResponse(
        f"{package} is not installed: run `npm ci` in {web_dir} and restart the server",
        status_code=404,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)

    return app


async def _no_page(request: Request) -> Response:
    return PlainTextResponse(
        "The browser page is not installed here (no web/public/). The Live API is at "
        "/api/live_chat/ws and /api/v1/live/ws.",
        status_code=404,
    )


async def login(request: Request) -> Response:
    """`POST /api/auth/login` `{username, password}` -> `{token, username, expires_at}`."""
    state = app_state(request)
    client = request.client.host if request.client else None
    try:
        body = await json_body(request, state)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ProtocolError('the body needs string fields "username" and "password"')
        user = await state.users.login(username, password, client)
    except AuthError as exc:
        if exc.code is not ErrorCode.LIMIT_EXCEEDED:
            return error_response(exc.code, exc.message)
        log.warning("login from %s refused: too many failed logins", client)
        return error_response(exc.code, exc.message, status=429)
    except LiveError as exc:
        return error_response(exc.code, exc.message)
    ttl = state.settings.jwt_ttl_s
    token = issue_token(state.jwt_secret, user, ttl)
    log.info("%s logged in", user)
    expires = iso_time(time.time() + ttl)
    return JSONResponse({"token": token, "username": user, "expires_at": expires})


def local_url(host: str, port: int, token: str) -> str:
    """The page's address with a sign-in token. The token is in the fragment, which browsers
    never send to the server, so it cannot reach an access log."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/#token={token}"
