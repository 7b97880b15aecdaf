"""Accounts for the browser page: usernames with slow, salted password hashes (scrypt).

Kept in `<data_dir>/users.json`, readable by its owner only, and re-read when it changes, so a
user added with the CLI can log in to a running server; or in PostgreSQL
(`LIVE_DATABASE_URL`). Only hashes are stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from live_server.auth.credentials import RecordFile, check_username
from live_server.auth.throttle import LocalThrottle, Throttle
from live_server.errors import AuthError, ErrorCode, LiveError

# scrypt with N=2^15, r=8: about 32 MiB and tens of milliseconds per guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 8
# Per user *and* client address, then that pair's logins wait: someone guessing at a name
# from elsewhere does not lock its owner out.
LOGIN_FAILURES = 5
# Per client address, whatever the usernames: one source guessing many accounts.
LOGIN_FAILURES_PER_CLIENT = 20
# Per user from all addresses: many sources guessing one account. High enough that its owner
# is only locked out by a distributed attack, never by one guesser.
LOGIN_FAILURES_PER_USER = 100
LOGIN_WINDOW_S = 60.0


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


# Checked against when the user does not exist, so that the time taken does not tell.
_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


@dataclass
class UserRecord:
    username: str
    password_hash: str
    created_at: float


class UserRecords(Protocol):
    """Where accounts live: the users file, or the database."""

    async def get(self, username: str) -> UserRecord | None: ...

    async def add(self, record: UserRecord) -> bool:
        """False if the username is taken."""
        ...

    async def set_hash(self, username: str, password_hash: str) -> bool: ...

    async def remove(self, username: str) -> bool: ...

    async def all(self) -> list[UserRecord]: ...


class UserFile:
    """Accounts in `<data_dir>/users.json`, readable by its owner only."""

    def __init__(self, data_dir: Path) -> None:
        self._file = RecordFile(data_dir / "users.json", "users", UserRecord)

    def _load(self) -> dict[str, UserRecord]:
        return {u.username: u for u in self._file.load()}

    async def get(self, username: str) -> UserRecord | None:
        return self._load().get(username)

    async def add(self, record: UserRecord) -> bool:
        users = self._load()
        if record.username in users:
            return False
        self._file.save([*users.values(), record])
        return True

    async def set_hash(self, username: str, password_hash: str) -> bool:
        users = self._load()
        if username not in users:
            return False
        users[username].password_hash = password_hash
        self._file.save(users.values())
        return True

    async def remove(self, username: str) -> bool:
        users = self._load()
        if users.pop(username, None) is None:
            return False
        self._file.save(users.values())
        return True

    async def all(self) -> list[UserRecord]:
        return list(self._load().values())


class UserStore:
    """Accounts and logins, whichever `UserRecords` keeps the accounts and whichever
    `Throttle` counts the failed logins (this process's own by default)."""

    def __init__(self, records: UserRecords, throttle: Throttle | None = None) -> None:
        self.records = records
        self.throttle: Throttle = throttle or LocalThrottle(LOGIN_WINDOW_S)

    async def add(self, username: str, password: str) -> UserRecord:
        check_username(username)
        _check_password_rules(password)
        record = UserRecord(username, await asyncio.to_thread(hash_password, password), time.time())
        if not await self.records.add(record):
            raise LiveError(f"user {username!r} exists; use `live-server user passwd {username}`")
        return record

    async def set_password(self, username: str, password: str) -> None:
        _check_password_rules(password)
        if not await self.records.set_hash(
            username, await asyncio.to_thread(hash_password, password)
        ):
            raise LiveError(f"no user {username!r}", code=ErrorCode.NOT_FOUND)

    async def remove(self, username: str) -> bool:
        return await self.records.remove(username)

    async def list(self) -> list[UserRecord]:
        return await self.records.all()

    async def login(self, username: str, password: str, client: str | None = None) -> str:
        """The username, if the password is right; `AuthError` if not. The password is checked
        (scrypt) on a worker thread. Logins are refused with `LIMIT_EXCEEDED`, without a
        password check, for the rest of the minute after `LOGIN_FAILURES` failures for one
        user from one client address (`client`), `LOGIN_FAILURES_PER_CLIENT` from that address
        for any users, or `LOGIN_FAILURES_PER_USER` for that user from anywhere."""
        # Usernames hold no ':', so the keys cannot collide.
        pair = f"pair:{username}:{client or ''}"
        limits = {pair: LOGIN_FAILURES, f"user:{username}": LOGIN_FAILURES_PER_USER}
        if client:
            limits[f"client:{client}"] = LOGIN_FAILURES_PER_CLIENT
        counts = await self.throttle.counts(list(limits))
        if any(n >= limit for n, limit in zip(counts, limits.values(), strict=True)):
            raise AuthError(
                "too many failed logins; try again in a minute",
                code=ErrorCode.LIMIT_EXCEEDED,
            )
        record = await self.records.get(username)
        stored = record.password_hash if record else _DUMMY_HASH
        ok = await asyncio.to_thread(check_password, password, stored)
        if not (ok and record):
            await self.throttle.add(list(limits))
            raise AuthError("Invalid username or password")
        # A success clears the user's count, not the client's: one known password does
        # not buy another round of guesses at other accounts.
        await self.throttle.clear(pair)
        return username


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise LiveError(f"a password needs at least {MIN_PASSWORD} characters")
