"""Signed deep-link payloads that name project, grid and worker in at most 64 base64url characters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PAYLOAD_LIMIT = 64  # Telegram's limit for a /start parameter: [A-Za-z0-9_-]{1,64}
_FORMAT_VERSION = 1
# version (1 byte), project, grid, worker (4 bytes each), expiry in days since 1970 (2 bytes; 0 = never)
_BODY = struct.Struct(">BIIIH")
_TAG_BYTES = 10  # 80 bits of HMAC-SHA256: forging one by chance is out of reach
_EPOCH = date(1970, 1, 1)


class LinkError(ValueError):
    """A payload that was tampered with, is malformed, or has expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "malformed", "tampered" or "expired"


@dataclass(frozen=True, slots=True)
class LinkTarget:
    project_id: int
    grid_id: int  # 0: no grid named
    worker_id: int = 0  # 0: no worker named
    expires: date | None = None


def make_payload(secret: bytes, target: LinkTarget) -> str:
    expiry_days = (target.expires - _EPOCH).days if target.expires else 0
    body = _BODY.pack(_FORMAT_VERSION, target.project_id, target.grid_id, target.worker_id, expiry_days)
    tag = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]
    payload = base64.urlsafe_b64encode(body + tag).decode().rstrip("=")
    assert len(payload) <= PAYLOAD_LIMIT
    return payload


def read_payload(secret: bytes, payload: str, *, today: date | None = None) -> LinkTarget:
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (ValueError, TypeError) as error:
        raise LinkError("malformed") from error
    if len(raw) != _BODY.size + _TAG_BYTES:
        raise LinkError("malformed")
    body, tag = raw[: _BODY.size], raw[_BODY.size :]
    expected = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        raise LinkError("tampered")
    version, project_id, grid_id, worker_id, expiry_days = _BODY.unpack(body)
    if version != _FORMAT_VERSION:
        raise LinkError("malformed")
    expires = _EPOCH + timedelta(days=expiry_days) if expiry_days else None
    today = today or datetime.now(UTC).date()
    if expires is not None and today > expires:
        raise LinkError("expired")
    return LinkTarget(project_id, grid_id, worker_id, expires)


def deep_link(bot_username: str, payload: str) -> str:
    return f"https://t.me/{bot_username}?start={payload}"


# A household confirms a door-to-door answer from its own phone: version 2, submission id, expiry days.
_VISIT_FORMAT_VERSION = 2
_VISIT_BODY = struct.Struct(">BIH")


def make_visit_payload(secret: bytes, submission_id: int, expires: date) -> str:
    body = _VISIT_BODY.pack(_VISIT_FORMAT_VERSION, submission_id, (expires - _EPOCH).days)
    tag = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(body + tag).decode().rstrip("=")


def read_visit_payload(secret: bytes, payload: str, *, today: date | None = None) -> int:
    """The submission a confirmation link names; LinkError when it is not one, tampered or expired."""
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (ValueError, TypeError) as error:
        raise LinkError("malformed") from error
    if len(raw) != _VISIT_BODY.size + _TAG_BYTES or raw[0] != _VISIT_FORMAT_VERSION:
        raise LinkError("malformed")
    body, tag = raw[: _VISIT_BODY.size], raw[_VISIT_BODY.size :]
    if not hmac.compare_digest(tag, hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]):
        raise LinkError("tampered")
    _, submission_id, expiry_days = _VISIT_BODY.unpack(body)
    if (today or datetime.now(UTC).date()) > _EPOCH + timedelta(days=expiry_days):
        raise LinkError("expired")
    return int(submission_id)


def is_visit_payload(payload: str) -> bool:
    """Cheap check before verifying: confirmation links and survey links differ in length and version."""
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (ValueError, TypeError):
        return False
    return len(raw) == _VISIT_BODY.size + _TAG_BYTES and raw[0] == _VISIT_FORMAT_VERSION


def button_tag(secret: bytes, *parts: object) -> str:
    """A short signature for button data that only the bot can have made: clients can send any data."""
    message = ":".join(str(part) for part in parts).encode()
    return (
        base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()[:8]).decode().rstrip("=")
    )
