"""Helpers the commands share: settings, an upgraded database, running a coroutine, reading files."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncSession

from minyi.commands import CommandError
from minyi.settings import Settings
from storage import repository as repo
from storage.database import UNAVAILABLE, Database
from storage.models import Grid, Project

T = TypeVar("T")


def settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise CommandError(str(error)) from error


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command on uvloop where it is installed (everywhere but Windows), else on asyncio's own loop.

    Per update the bot makes four database round trips and three Bot API calls: much of its time goes to
    the event loop's network code, which uvloop does in C (measured: about 9 % less CPU per update).
    MINYI_EVENT_LOOP=asyncio chooses asyncio's loop all the same."""
    runner: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run
    if os.environ.get("MINYI_EVENT_LOOP", "").strip().lower() != "asyncio":
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    return runner(coroutine)


def open_database(url: str) -> Database:
    """A Database for `url`, or a one-line reason why that URL cannot be used."""
    try:
        return Database(url)
    except ArgumentError as error:
        raise CommandError(f"MINYI_DATABASE_URL is not a database URL: {url!r}") from error
    except ImportError as error:
        raise CommandError(
            f"MINYI_DATABASE_URL asks for a database driver Minyi does not use ({url.split('://')[0]!r}): "
            "use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"
        ) from error


def reason(error: BaseException) -> str:
    """The first line of what the database driver said."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


@contextlib.asynccontextmanager
async def database(config: Settings) -> AsyncIterator[Database]:
    """The configured database, refused with a clear reason when it is unreachable or not upgraded."""
    from storage.migrate import current_head  # Alembic is slow to import; most commands never need it

    db = open_database(config.database_url)
    try:
        try:
            async with db.reading() as session:
                version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except UNAVAILABLE as error:
            message = reason(error)
            # "no such table" (SQLite) or 'relation "alembic_version" does not exist' (PostgreSQL)
            if "alembic_version" in message:
                raise CommandError("the database has no tables yet; run `minyi db upgrade` first") from error
            where = db.url.render_as_string(hide_password=True)
            raise CommandError(f"cannot open the database {where}: {message}") from error
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


async def project_or_fail(session: AsyncSession, code: str) -> Project:
    """The project with `code`, or a one-line reason."""
    project = await repo.project_by_code(session, code)
    if project is None:
        raise CommandError(f"no project with code {code!r}")
    return project


async def grids_or_fail(session: AsyncSession, project: Project, codes: Sequence[str]) -> list[Grid]:
    """The project's grids with these codes, in order, or a one-line reason naming the first unknown one."""
    grids = []
    for code in codes:
        grid = await repo.grid_by_code(session, project.id, code)
        if grid is None:
            raise CommandError(f"project {project.code} has no grid {code!r}")
        grids.append(grid)
    return grids
