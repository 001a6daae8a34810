"""Settings from environment variables, each with a documented default (see README, "Settings")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bot import texts

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///minyi-data/minyi.db"
DEFAULT_API_URL = "https://api.telegram.org"
TRANSPORTS = ("aiogram", "ptb")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from error


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a number, not {raw!r}") from error
    if value <= 0:
        raise ValueError(f"{name} must be more than 0, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    # Where everything is stored: SQLite in a file by default, PostgreSQL in production
    # (postgresql+asyncpg://user:password@host/db).
    database_url: str = DEFAULT_DATABASE_URL
    # The token from @BotFather; `minyi run` needs it, the demo makes up its own.
    bot_token: str = ""
    # Root of the Bot API server: Telegram's, a self-hosted one, or the local simulator.
    telegram_api_url: str = DEFAULT_API_URL
    # The bot's @username, used to print deep links.
    bot_username: str = "minyi_bot"
    # Hex key that signs deep links; when empty, one is generated and kept in the database.
    secret_key: str = ""
    # Webhook mode: the public https URL Telegram posts to, and where `minyi run --webhook` listens.
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8443
    # Updates handled at once by one bot process; the database pool is sized to match.
    concurrency: int = 64
    # Told to a resident whose answer suggests they may harm themselves.
    crisis_line: str = texts.DEFAULT_CRISIS_LINE
    # Pushes, reminders and notices: messages per second overall (Telegram allows about 30), and the
    # local hours in which they wait ("21:00-08:00"; "off" for none), read in `timezone`.
    push_rate: float = 25.0
    quiet_hours: str = "21:00-08:00"
    # Residents silent this many days in an unfinished survey get one reminder (0: never).
    remind_after_days: int = 3
    # An urgent alert nobody acknowledged goes to the admins after this many minutes.
    alert_escalate_minutes: int = 30
    transport: str = field(default="aiogram")
    # The web console: local time zone of dates shown and reported, minutes a session may sit idle, and
    # whether cookies are marked Secure (set it when the console is served over https).
    timezone: str = "Asia/Shanghai"
    console_session_minutes: int = 30
    console_secure_cookies: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            database_url=env("MINYI_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL,
            bot_token=env("MINYI_BOT_TOKEN", "").strip(),
            telegram_api_url=(env("MINYI_TELEGRAM_API_URL", "").strip() or DEFAULT_API_URL).rstrip("/"),
            bot_username=env("MINYI_BOT_USERNAME", "").strip().lstrip("@") or "minyi_bot",
            secret_key=env("MINYI_SECRET_KEY", "").strip(),
            webhook_url=env("MINYI_WEBHOOK_URL", "").strip(),
            webhook_secret=env("MINYI_WEBHOOK_SECRET", "").strip(),
            webhook_host=env("MINYI_WEBHOOK_HOST", "").strip() or "127.0.0.1",
            webhook_port=_int("MINYI_WEBHOOK_PORT", 8443),
            concurrency=_int("MINYI_CONCURRENCY", 64),
            crisis_line=env("MINYI_CRISIS_LINE", "").strip() or cls.crisis_line,
            push_rate=_float("MINYI_PUSH_RATE", 25.0),
            quiet_hours=env("MINYI_QUIET_HOURS", "21:00-08:00").strip(),
            remind_after_days=_int("MINYI_REMIND_AFTER_DAYS", 3),
            alert_escalate_minutes=_int("MINYI_ALERT_ESCALATE_MINUTES", 30),
            transport=env("MINYI_TRANSPORT", "").strip() or "aiogram",
            timezone=env("MINYI_TIMEZONE", "").strip() or "Asia/Shanghai",
            console_session_minutes=_int("MINYI_SESSION_MINUTES", 30),
            console_secure_cookies=env("MINYI_SECURE_COOKIES", "").strip().lower() in ("1", "true", "yes"),
        )

    @property
    def link_secret(self) -> bytes | None:
        return bytes.fromhex(self.secret_key) if self.secret_key else None
