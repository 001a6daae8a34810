"""Passwords (scrypt), sign-in sessions that expire, CSRF tokens and throttling of failed sign-ins."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts
from storage.models import Account, utcnow

# scrypt cost: 2**15 × 8 × 128 bytes = 32 MiB and ~0.1 s per check, too slow to guess many passwords.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 10
# Compared against when the account does not exist, so a missing name takes as long as a wrong password.
_DUMMY_HASH: str | None = None


def hash_password(password: str, n: int = SCRYPT_N) -> str:
    """The stored form "scrypt$n$r$p$salt$hash"; the cost travels with the hash, so it can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def password_problem(password: str) -> str:
    """Why a new password is refused, or "" when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(set(password)) < 4:
        return "the password repeats too few characters"
    return ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Limits:
    """How long sessions live and how many failed sign-ins are tolerated."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    window: timedelta = timedelta(minutes=15)
    failures_per_name: int = 5
    failures_per_address: int = 20


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The account behind a request and what it may see."""

    account_id: int
    name: str
    role: str
    csrf_token: str
    token_hash: str
    grid_ids: frozenset[int] | None  # None: every grid; grid workers see only theirs

    @property
    def actor(self) -> str:
        return f"account:{self.account_id}"


async def throttled(session: AsyncSession, name: str, address: str, limits: Limits) -> bool:
    since = utcnow() - limits.window
    by_name = await accounts.login_failures_since(session, since, name=name)
    by_address = await accounts.login_failures_since(session, since, address=address)
    return by_name >= limits.failures_per_name or by_address >= limits.failures_per_address


async def check_password(account: Account | None, password: str) -> bool:
    """Verify off the event loop; a missing or disabled account costs the same time as a wrong password."""
    global _DUMMY_HASH
    if account is None or not account.active:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = await asyncio.to_thread(hash_password, secrets.token_hex(8))
        await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
        return False
    return await asyncio.to_thread(verify_password, password, account.password_hash)


async def start_session(session: AsyncSession, account: Account) -> str:
    """Open a session for the account; returns the cookie value (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    await accounts.open_session(session, token_hash(token), account.id, secrets.token_urlsafe(32))
    return token


async def read_session(session: AsyncSession, token: str, limits: Limits) -> tuple[SignedIn | None, str]:
    """The signed-in account for a cookie, read without writing; and what the caller should write:
    "close" (expired, or the account was disabled), "touch" (note the activity) or ""."""
    now = utcnow()
    row = await accounts.session_by_hash(session, token_hash(token))
    if row is None:
        return None, ""
    if now - row.last_seen_at > limits.idle or now - row.created_at > limits.absolute:
        return None, "close"
    account = await session.get(Account, row.account_id)
    if account is None or not account.active:
        return None, "close"
    # Writing on every request would queue behind the bot's writers on SQLite; a minute's precision is plenty.
    touch = "touch" if now - row.last_seen_at > timedelta(minutes=1) else ""
    grids = await accounts.grids_of_account(session, account.id) if account.role == "gridworker" else None
    return SignedIn(account.id, account.name, account.role, row.csrf_token, row.token_hash, grids), touch


async def write_session(session: AsyncSession, token: str, action: str) -> None:
    if action == "close":
        await accounts.close_session(session, token_hash(token))
    elif action == "touch":
        row = await accounts.session_by_hash(session, token_hash(token))
        if row is not None:
            row.last_seen_at = utcnow()


def expired_before(limits: Limits, now: datetime) -> tuple[datetime, datetime]:
    return now - limits.idle, now - limits.absolute
