"""The `live-server` command: serve, token, apikey, user, migrate."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from live_server import logs
from live_server.auth.credentials import (
    check_username,
    ensure_data_dir,
    issue_token,
    load_jwt_secret,
    write_private,
)
from live_server.errors import ConfigError, LiveError
from live_server.settings import Settings
from live_server.storage.backends import opened

log = logging.getLogger("live_server")
SIGN_IN_FILE = "sign-in-url"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="live-server", description="WebSocket server for live voice and text chat with an LLM."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default: LIVE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: LIVE_PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the one port (more than one needs LIVE_REDIS_URL)",
    )

    token = sub.add_parser("token", help="print a dashboard JWT for USERNAME")
    token.add_argument("username")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default: LIVE_JWT_TTL_S)")

    apikey = sub.add_parser("apikey", help="manage API keys for /api/v1/live/ws")
    keys = apikey.add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key with scope 'chat' and print it once")
    create.add_argument("--name", default="default")
    keys.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    user = sub.add_parser("user", help="manage accounts for the browser page")
    users = user.add_subparsers(dest="action", required=True)
    for action, text in (("add", "create an account"), ("passwd", "change a password")):
        p = users.add_parser(action, help=text)
        p.add_argument("username")
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    users.add_parser("list", help="list accounts")
    remove = users.add_parser("remove", help="delete an account")
    remove.add_argument("username")
    sub.add_parser(
        "migrate",
        help="copy the data dir's conversations, keys and accounts into LIVE_DATABASE_URL",
    )
    lines = sub.add_parser(
        "voice-lines", help="print a recording as voice frames, one JSON line each (for websocat)"
    )
    lines.add_argument("path", help="a WAV, FLAC, OGG or MP3 file")
    lines.add_argument("--stamp", default="seg-1")
    lines.add_argument("--chunk-ms", type=int, default=100, help="audio per frame (default 100)")
    lines.add_argument(
        "--vad-server",
        action="store_true",
        help="audio only, then a second of silence: for a socket opened with vad=server",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # What the server and its commands write (conversations, keys, the signing secret, the
    # sign-in link) is for the owner only.
    os.umask(0o077)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return _serve(settings, args.host, args.port, args.workers)
        if args.command == "token":
            username = check_username(args.username)
            secret = _jwt_secret(settings)
            print(issue_token(secret, username, args.ttl or settings.jwt_ttl_s))
            return 0
        if args.command == "user":
            return asyncio.run(_user(settings, args))
        if args.command == "migrate":
            from live_server.storage.migrate import migrate

            return asyncio.run(migrate(settings))
        if args.command == "voice-lines":
            from live_server.astrbot.voice_lines import voice_lines

            frames = voice_lines(args.path, args.stamp, args.chunk_ms, args.vad_server)
            sys.stdout.write("\n".join(frames) + "\n")
            return 0
        return asyncio.run(_apikey(settings, args))
    except (ConfigError, LiveError) as exc:
        print(f"live-server: {exc}", file=sys.stderr)
        return 2


async def _apikey(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as backends:
        keys = backends.keys
        if args.action == "create":
            key, record = await keys.create(args.name)
            print(f"created {record.id} ({record.name}); it is shown only once", file=sys.stderr)
            print(key)
            return 0
        if args.action == "list":
            for r in await keys.list():
                status = "revoked" if r.revoked else "active"
                print(f"{r.id}\t{r.name}\t{','.join(r.scopes)}\t{_when(r.created_at)}\t{status}")
            return 0
        if await keys.revoke(args.key_id):
            print(f"revoked {args.key_id}", file=sys.stderr)
            return 0
    print(f"live-server: no active key with id {args.key_id!r}", file=sys.stderr)
    return 1


async def _user(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin) if args.action in ("add", "passwd") else ""
    async with opened(settings) as backends:
        users = backends.users
        if args.action == "add":
            await users.add(args.username, password)
            print(f"created user {args.username}", file=sys.stderr)
            return 0
        if args.action == "passwd":
            await users.set_password(args.username, password)
            print(f"changed the password of {args.username}", file=sys.stderr)
            return 0
        if args.action == "list":
            for u in await users.list():
                print(f"{u.username}\t{_when(u.created_at)}")
            return 0
        if await users.remove(args.username):
            print(f"removed user {args.username}", file=sys.stderr)
            return 0
    print(f"live-server: no user {args.username!r}", file=sys.stderr)
    return 1


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise ConfigError("the passwords differ")
    return password


def _serve(settings: Settings, host: str | None, port: int | None, workers: int = 1) -> int:
    import uvicorn

    from live_server.web import page
    from live_server.web.app import create_app

    logs.configure(settings.log_level)
    host = host or settings.host
    port = port if port is not None else settings.port
    # Bound before anything else: a taken port is said at once, with how to pick another,
    # and no sign-in link is made for a server that cannot start.
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and settings.redis_url is None:
        raise ConfigError(
            f"--workers {workers} needs LIVE_REDIS_URL=redis://...: the workers share the "
            "conversation feed and chat replies through Redis (and, for conversations, keys "
            "and accounts, LIVE_DATABASE_URL or the one data dir)"
        )
    listener = _listen(host, port)
    if settings.redis_url is not None:
        asyncio.run(_check_redis(settings.redis_url))
    if settings.database_url is not None:
        # Reached (and migrated) now, so that a wrong address is said plainly, not as a
        # failed start-up's traceback; the sign-in link's secret is read on the way.
        secret = asyncio.run(_database_secret(settings))
        log.info(
            "conversations, keys and accounts: PostgreSQL at %s",
            logs.redact_url(settings.database_url),
        )
    else:
        secret = load_jwt_secret(settings.data_dir, settings.jwt_secret)
    if workers > 1:
        return _serve_workers(settings, listener, workers, secret)
    app = create_app(settings)
    state = app.state.live
    _log_engines(settings, state.engines.llm.name, state.engines.tts, state.engines.stt)
    log.info("data dir: %s", settings.data_dir)
    web_dir = settings.web_dir or page.DEFAULT_WEB_DIR
    if missing := page.vendor_missing(web_dir):
        log.warning(
            "the page's voice detection needs %s: run `npm ci` in %s (typing works without)",
            ", ".join(missing),
            web_dir,
        )
    log.info(
        "sockets: ws://%s:%d/api/live_chat/ws (a JWT from `live-server token NAME`) and "
        "ws://%s:%d/api/v1/live/ws (a key from `live-server apikey create`)",
        host, port, host, port,
    )  # fmt: skip
    token = issue_token(secret, settings.local_user, settings.jwt_ttl_s)
    _show_sign_in(settings, page.local_url(host, port, token))
    uvicorn.Server(_uvicorn_config(settings, app)).run(sockets=[listener])
    return 0


def _uvicorn_config(settings: Settings, app: Any, **more: Any) -> Any:
    import uvicorn

    from live_server.web.ws_closing import LingeringCloseProtocol

    return uvicorn.Config(
        app,
        log_config=None,
        ws=LingeringCloseProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_deflate,
        timeout_graceful_shutdown=5,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        **more,
    )


def _serve_workers(settings: Settings, listener: socket.socket, workers: int, secret: str) -> int:
    """N processes on one port, each building the app (and loading the engines) itself."""
    host, port = listener.getsockname()[:2]
    log.info("%d workers on %s:%d, sharing Redis and the stores", workers, host, port)
    from live_server.web import page

    _show_sign_in(
        settings,
        page.local_url(host, port, issue_token(secret, settings.local_user, settings.jwt_ttl_s)),
    )
    config = _uvicorn_config(
        settings, "live_server.web.app:from_environment", factory=True, workers=workers
    )
    _supervisor(config, listener).run()
    return 0


def _supervisor(config: Any, listener: socket.socket) -> Any:
    """uvicorn's supervisor (it restarts a worker that dies), giving each worker a listening
    socket of its own on the listener's port where the system allows (`SO_REUSEPORT`): the
    kernel then deals the connections out evenly. Workers that race to accept from one shared
    socket split them as their loops happen to wake: 846 against 1,166 of 2,000 sockets was
    measured, and the busier worker set the latency of all."""
    from uvicorn.supervisors import Multiprocess

    if not hasattr(socket, "SO_REUSEPORT"):
        return Multiprocess(config, sockets=[listener])
    # The listener was bound without the option, so a port already taken (even by another
    # server's workers) was refused. It is bound again with it, and only bound, never
    # listened on: it holds the port while a worker is replaced.
    address = listener.getsockname()[:2]
    listener.close()
    holder = _listen(*address, reuse_port=True)

    class OwnSockets(Multiprocess):
        @property
        def sockets(self) -> list[socket.socket]:  # read once for each worker started
            return [_listen(*address, reuse_port=True)]

        @sockets.setter
        def sockets(self, held: list[socket.socket]) -> None:
            self.held = held

    return OwnSockets(config, sockets=[holder])


async def _check_redis(url: str) -> None:
    from live_server.bus import RedisBus

    bus = RedisBus(url)
    try:
        await bus.open()
    except ConnectionError as exc:
        raise ConfigError(str(exc)) from None
    await bus.aclose()


def _jwt_secret(settings: Settings) -> str:
    """The secret the server signs dashboard tokens with, for a token made here."""
    if settings.jwt_secret or settings.database_url is None:
        return load_jwt_secret(settings.data_dir, settings.jwt_secret)
    return asyncio.run(_database_secret(settings))


async def _database_secret(settings: Settings) -> str:
    """Open (and migrate) the database; the signing secret, configured or kept in it."""
    async with opened(settings) as backends:
        return await backends.jwt_secret(settings)


def _listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several sockets on the port, one per worker (`_supervisor`)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            "another program (or another live-server) is using it"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror
        )
        raise ConfigError(
            f"cannot listen on {host}:{port}: {hint}. Choose another port with "
            f"`live-server serve --port N` or LIVE_PORT=N"
        ) from None
    sock.set_inheritable(True)
    return sock


def _show_sign_in(settings: Settings, url: str) -> None:
    """The sign-in link is for the person who started the server, never for the log: on a
    terminal it is printed; when the output goes to a file or a journal, it is written to a
    file only the owner can read, and the log says where."""
    if sys.stderr.isatty():
        print(
            f"\n    Open the Live page, signed in as {settings.local_user}:\n    {url}\n",
            file=sys.stderr,
            flush=True,
        )
        return
    path = ensure_data_dir(settings.data_dir) / SIGN_IN_FILE
    write_private(path, url + "\n")
    log.info(
        "the sign-in link for %s is in %s (not shown: the output is not a terminal)",
        settings.local_user,
        path,
    )


def _log_engines(settings: Settings, llm_name: str, tts: object, stt_engine: object) -> None:
    if settings.llm == "echo":
        log.info(
            "LLM: echo (embedded, offline: it repeats what you say). LIVE_LLM=local for the "
            "embedded model that converses"
        )
    elif settings.llm == "local":
        log.info(
            "LLM: %s (embedded, offline, in this process; LIVE_LOCAL_MODEL takes any GGUF chat "
            "model). For a bigger model set LIVE_LLM=openai and LIVE_LLM_API_KEY, plus "
            "LIVE_LLM_BASE_URL and LIVE_LLM_MODEL for DeepSeek, DashScope, vLLM or Ollama",
            llm_name,
        )
    else:
        log.info(
            "LLM: openai-compatible, model %s at %s. LIVE_LLM=echo for the offline echo model",
            llm_name,
            settings.llm_base_url or "api.openai.com",
        )
    descriptions = {
        "piper": "piper, voice "
        f"{settings.piper_voice or 'en_US joe (medium)'} (embedded, offline, neural)",
        "espeak": "espeak (embedded, offline)",
        "edge": "edge (Microsoft neural voices, needs internet; falls back to espeak)",
        "openai": f"openai-compatible /v1/audio/speech, model {settings.tts_model}",
        "none": "none (text-only replies)",
    }
    described = descriptions[settings.tts]
    if settings.tts == "piper" and getattr(tts, "name", None) != "piper":
        described = "espeak (embedded, offline), because Piper could not be loaded"
    log.info("TTS: %s. Switch with LIVE_TTS=piper|espeak|edge|openai|none", described)
    stt = {
        "whisper": f"{getattr(stt_engine, 'name', 'whisper')} (embedded, offline, "
        f"{settings.stt_workers} worker processes)",
        "pocketsphinx": "pocketsphinx (embedded, offline, English)",
        "openai": f"whisper-compatible /v1/audio/transcriptions, model {settings.stt_model} at "
        f"{settings.stt_base_url or 'api.openai.com'}",
        "none": "none (voice frames are refused; text_input only)",
    }
    log.info("STT: %s. Switch with LIVE_STT=whisper|pocketsphinx|openai|none", stt[settings.stt])
