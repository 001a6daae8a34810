"""Shared fixtures: a fresh database per test (SQLite, PostgreSQL), the Bot API simulator, a running bot."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

from bot.engine import DialogEngine
from bot.fakeapi import FakeTelegram
from bot.links import LinkTarget, make_payload
from bot.publishing import publish
from bot.survey_file import parse_survey
from bot.transports.base import Transport
from minyi.settings import Settings
from minyi.wiring import make_engine, make_transport
from storage import repository as repo
from storage.database import Database
from storage.migrate import upgrade_sync
from storage.models import Base, ProcessedUpdate

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_SURVEY = ROOT / "tests" / "bot" / "data" / "contract.yaml"
EXAMPLE_SURVEY = ROOT / "examples" / "road-widening.yaml"
POSTGRES_URL = os.environ.get("MINYI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
# In CI PostgreSQL must be there: a missing server fails the run instead of skipping half the suite.
REQUIRE_POSTGRES = os.environ.get("MINYI_REQUIRE_POSTGRES", "") == "1"
LINK_SECRET = b"test-link-secret"


def _postgres_admin_url() -> str:
    return POSTGRES_URL


async def _postgres_reachable() -> str:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return ""
    except Exception as error:  # any failure to connect means "not available"
        return str(error).splitlines()[0]
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def cjk_font() -> None:
    """Posters, chart images and the Word report need a font with Chinese characters. Without one such a
    test is skipped with what to install; in CI (which installs it) a missing font is a failure."""
    from bot.poster import FontMissing
    from bot.poster import cjk_font as poster_font
    from console.charts import ChartFontError, cjk_font_file

    try:
        poster_font()
        cjk_font_file()
    except (FontMissing, ChartFontError) as missing:
        if os.environ.get("CI"):
            pytest.fail(f"no Chinese font: .ci/run installs fonts-noto-cjk ({missing})")
        pytest.skip(f"no Chinese font on this machine (apt-get install fonts-noto-cjk): {missing}")


NEEDS_CJK_FONT = pytest.mark.usefixtures("cjk_font")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test: faster than migrating every time."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, migrated once and dropped at the end."""
    problem = asyncio.run(_postgres_reachable())
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_URL}: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"minyi_test_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_sync(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class ConnectionCutter:
    """A pool `connect` hook (registered with insert=True) that ends the first `limit` new PostgreSQL
    connections before SQLAlchemy has set them up, as a restart does to a connection being opened;
    asyncpg's own error, not SQLAlchemy's, then reaches whoever asked for the connection."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url.replace("+asyncpg", "")
        self.limit = limit
        self.cut: list[int] = []

    def __call__(self, dbapi_connection: Any, _record: Any) -> None:
        if len(self.cut) >= self.limit:
            return
        pid = dbapi_connection.driver_connection.get_server_pid()
        self.cut.append(pid)
        # Called synchronously from inside SQLAlchemy's greenlet: await_only runs a coroutine.
        admin = await_only(asyncpg.connect(self.url))
        try:
            await_only(admin.execute("SELECT pg_terminate_backend($1, 5000)", pid))
        finally:
            await_only(admin.close())


async def processed_update_ids(db: Database) -> list[int]:
    """The update ids the database remembers as handled, in order."""
    async with db.reading() as session:
        return sorted((await session.scalars(select(ProcessedUpdate.update_id))).all())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: a SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        path = tmp_path / "minyi.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(_truncate(url))
    return url


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@dataclass
class Project:
    id: int
    code: str
    version_id: int
    grid_ids: dict[str, int]

    def start(self, grid: str = "G01") -> str:
        return "/start " + make_payload(LINK_SECRET, LinkTarget(self.id, self.grid_ids[grid]))


async def create_project(db: Database, survey: Path = CONTRACT_SURVEY, code: str = "T1") -> Project:
    source = survey.read_text(encoding="utf-8")
    questionnaire = parse_survey(source)
    async with db.transaction() as session:
        project = await repo.create_project(session, code, questionnaire.title)
        version, _ = await publish(session, project, questionnaire, source)
        grids = {
            code: (await repo.upsert_grid(session, project.id, code, f"网格{code}", "东风社区", 100)).id
            for code in ("G01", "G02")
        }
    return Project(project.id, code, version.id, grids)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@dataclass
class RunningBot:
    """A bot on one transport, polling the simulator; `restart()` replaces it with a fresh process state."""

    name: str
    fake: FakeTelegram
    db: Database
    transport: Transport
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.transport.stop()
        await self.task
        await self.transport.close()
        # Classification still running after the last reply holds a connection: let it finish, as
        # `minyi run` does on shutdown, before the test's database is closed.
        await self.engine.tagging.drain()

    @property
    def engine(self) -> DialogEngine:
        engine: DialogEngine = self.transport.engine  # type: ignore[attr-defined]
        return engine

    async def restart(self) -> None:
        """Stop this bot and start a new engine and transport: nothing survives but the database."""
        await self.stop()
        self.transport, self.task = await start_bot(self.name, self.fake, self.db)


def bot_settings(fake: FakeTelegram, db: Database) -> Settings:
    return Settings(
        database_url=db.url.render_as_string(hide_password=False),
        bot_token=fake.token,
        telegram_api_url=fake.url,
        secret_key=LINK_SECRET.hex(),
    )


async def start_bot(name: str, fake: FakeTelegram, db: Database) -> tuple[Transport, asyncio.Task[None]]:
    settings = bot_settings(fake, db)
    transport = make_transport(name, make_engine(settings, db), settings)
    task = asyncio.create_task(transport.run_polling())
    return transport, task


@pytest.fixture(params=["aiogram", "ptb"])
async def running_bot(
    request: pytest.FixtureRequest, fake: FakeTelegram, db: Database
) -> AsyncIterator[RunningBot]:
    transport, task = await start_bot(request.param, fake, db)
    bot = RunningBot(request.param, fake, db, transport, task)
    yield bot
    await bot.stop()
