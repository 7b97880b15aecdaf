"""Credentials: dashboard JWTs (HS256) and API keys, of which only SHA-256 hashes are stored."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import jwt

from live_server.errors import AuthError, ConfigError, ErrorCode

R = TypeVar("R")
KEY_PREFIX = "lsk_"
SCOPE_CHAT = "chat"
JWT_SECRET_FILE = "jwt_secret"
USERNAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def ensure_data_dir(data_dir: Path) -> Path:
    """The data dir, made if missing, and readable by its owner only whatever it was: it
    holds the conversations, the key hashes and the signing secret."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if data_dir.stat().st_mode & 0o077:
        data_dir.chmod(0o700)
    return data_dir


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(48)


def load_jwt_secret(data_dir: Path, configured: str | None) -> str:
    """The configured secret, else one generated once and kept in the data dir."""
    if configured:
        return configured
    path = ensure_data_dir(data_dir) / JWT_SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    # Written whole under another name, then linked into place: a process starting beside
    # this one finds either no file or the whole secret, and both keep the first one linked.
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=f".{JWT_SECRET_FILE}-")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_jwt_secret())
        with contextlib.suppress(FileExistsError):
            os.link(written, path)
    finally:
        os.unlink(written)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise ConfigError(
            f"{path} is empty: delete it (a new secret is made at start-up, and tokens signed "
            "before are refused) or set LIVE_JWT_SECRET"
        )
    return secret


class SigningSecret(Protocol):
    """Where the dashboard's signing secret is kept, when it is not configured."""

    async def jwt_secret(self) -> str:
        """The secret, made and kept on first use."""
        ...


class SecretFile:
    """The secret in the data dir: shared by the processes on one machine."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def jwt_secret(self) -> str:
        return load_jwt_secret(self.data_dir, None)


def issue_token(secret: str, username: str, ttl_s: int) -> str:
    now = int(time.time())
    return jwt.encode({"username": username, "iat": now, "exp": now + ttl_s}, secret, "HS256")


def verify_token(secret: str, token: str | None) -> str:
    """The username a dashboard token was issued for; `AuthError` with the close reason if not."""
    if not token:
        raise AuthError("Missing authentication token")
    try:
        # Pinning algorithms rejects `alg: none` and any other algorithm.
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "username"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("Token expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("Invalid token") from None
    username = claims.get("username")
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise AuthError("Invalid token")
    return username


def check_username(username: str | None) -> str:
    if username is None or not USERNAME_RE.fullmatch(username):
        raise AuthError(
            "username must be 1-64 characters of letters, digits and _-.@", code=ErrorCode.BAD_USER
        )
    return username


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class ApiKeyRecord:
    id: str
    name: str
    key_hash: str
    scopes: list[str] = field(default_factory=lambda: [SCOPE_CHAT])
    created_at: float = field(default_factory=time.time)
    revoked: bool = False


class RecordFile(Generic[R]):
    """Dataclass records kept as JSON (`{name: [...]}`) in a file only its owner can read.
    Re-read when the file changes, so what the CLI writes reaches a running server."""

    def __init__(self, path: Path, name: str, record: Callable[..., R]) -> None:
        self.path = path
        self._name = name
        self._record = record
        self._cache: tuple[int, list[R]] | None = None

    def load(self) -> list[R]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self._cache is None or self._cache[0] != mtime:
            raw = json.loads(self.path.read_text())
            self._cache = (mtime, [self._record(**r) for r in raw[self._name]])
        return self._cache[1]

    def save(self, records: Iterable[R]) -> None:
        ensure_data_dir(self.path.parent)
        body = {self._name: [asdict(r) for r in records]}  # type: ignore[call-overload]
        write_private(self.path, json.dumps(body, indent=2))
        self._cache = None


class KeyRecords(Protocol):
    """Where API key records live: the keys file, or the database."""

    async def add(self, record: ApiKeyRecord) -> bool: ...

    async def all(self) -> list[ApiKeyRecord]: ...

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        """The record with this hash, revoked or not."""
        ...

    async def revoke(self, key_id: str) -> bool:
        """False if there is no active key with this id."""
        ...

    async def valid_ids(self) -> set[str]: ...


class KeyFile:
    """API key records in `<data_dir>/api_keys.json`, which keys made with the CLI reach at
    once."""

    def __init__(self, data_dir: Path) -> None:
        self._file = RecordFile(data_dir / "api_keys.json", "keys", ApiKeyRecord)

    async def add(self, record: ApiKeyRecord) -> bool:
        self._file.save([*self._file.load(), record])
        return True

    async def all(self) -> list[ApiKeyRecord]:
        return list(self._file.load())

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        match: ApiKeyRecord | None = None
        # Compare against every record so the time taken does not depend on where a match is.
        for r in self._file.load():
            if hmac.compare_digest(r.key_hash, key_hash):
                match = r
        return match

    async def revoke(self, key_id: str) -> bool:
        records = self._file.load()
        found = False
        for r in records:
            if r.id == key_id and not r.revoked:
                r.revoked = True
                found = True
        if found:
            self._file.save(records)
        return found

    async def valid_ids(self) -> set[str]:
        return {r.id for r in self._file.load() if not r.revoked}


class ApiKeyStore:
    """Making, listing, revoking and checking API keys, whichever `KeyRecords` keeps them."""

    def __init__(self, records: KeyRecords) -> None:
        self.records = records

    async def create(self, name: str, scopes: list[str] | None = None) -> tuple[str, ApiKeyRecord]:
        """Make a key; the key itself is returned here once and never stored."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            id=f"key_{secrets.token_hex(4)}",
            name=name,
            key_hash=hash_key(key),
            scopes=scopes or [SCOPE_CHAT],
        )
        await self.records.add(record)
        return key, record

    async def list(self) -> list[ApiKeyRecord]:
        return await self.records.all()

    async def revoke(self, key_id: str) -> bool:
        return await self.records.revoke(key_id)

    async def verify(self, key: str | None, scope: str = SCOPE_CHAT) -> ApiKeyRecord:
        if not key:
            raise AuthError("Missing API key")
        digest = hash_key(key)
        match = await self.records.find(digest)
        if match is None or match.revoked or not hmac.compare_digest(match.key_hash, digest):
            raise AuthError("Invalid API key")
        if scope not in match.scopes:
            raise AuthError(f"API key lacks the {scope!r} scope")
        return match
