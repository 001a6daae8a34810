"""Helpers the commands share: settings, an upgraded database, running a coroutine, reading files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from minyi.commands import CommandError
from minyi.settings import Settings
from storage.database import Database
from storage.migrate import current_head

T = TypeVar("T")


def settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise CommandError(str(error)) from error


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@contextlib.asynccontextmanager
async def database(config: Settings) -> AsyncIterator[Database]:
    """The configured database, refused with a clear reason when it is unreachable or not upgraded."""
    db = Database(config.database_url)
    try:
        try:
            async with db.reading() as session:
                version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except (OperationalError, DBAPIError, OSError) as error:
            message = str(getattr(error, "orig", error)).splitlines()[0]
            if "alembic_version" in message or "does not exist" in message:
                raise CommandError("the database has no tables yet; run `minyi db upgrade` first") from error
            raise CommandError(f"cannot open the database {db.url.render_as_string()}: {message}") from error
        if version != current_head():
            raise CommandError("the database schema is out of date; run `minyi db upgrade`")
        yield db
    finally:
        await db.dispose()


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise CommandError(f"{path}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read it ({error})") from error
