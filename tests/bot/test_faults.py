"""Faults under load: each test fails if an answer is lost, counted twice or stored out of order.

Residents answer the example questionnaire through the simulator while something goes wrong: the bot
process is killed, the database is locked or loses its connections, the Bot API errs or is slow, updates
come twice, or one resident's taps reach two bot processes at once. Afterwards the database is audited
(minyi.loadrun.audit) and every resident must have reached their receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.fsm.storage.memory import MemoryStorage
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot import callbacks as cb
from bot.autopilot import answer_step
from bot.engine import QUESTIONNAIRE_CACHE, DialogEngine
from bot.tagging import ModelTags, QuickTags
from bot.transports.aiogram import AiogramTransport
from bot.transports.base import Transport
from minyi.loadrun import SECRET, Audit, BotProcess, RecordingTelegram, audit, run_residents, seed
from minyi.settings import Settings
from minyi.wiring import make_transport, open_database
from storage.database import Database
from storage.models import ProcessedUpdate, Submission
from tests.conftest import ConnectionCutter, _truncate

RESIDENTS = 6


class PlainTagger:
    """Tags nothing: these tests are about answers surviving faults, not about what they say."""

    def quick(self, text: str) -> QuickTags:
        return QuickTags(False, (), text)

    def classify(self, text: str) -> ModelTags:
        return ModelTags(())


def assert_clean(found: Audit) -> None:
    assert found.clean, "\n".join(found.problems[:20]) or str(found)


@contextlib.asynccontextmanager
async def bot_in_process(
    fake: RecordingTelegram, url: str, transport: str, on_connect: Callable[[Any, Any], None] | None = None
) -> AsyncIterator[Transport]:
    """The bot running in this process; `on_connect` sees each database connection the bot opens before
    SQLAlchemy sets it up."""
    settings = Settings(
        database_url=url, bot_token=fake.token, telegram_api_url=fake.url, secret_key=SECRET.hex()
    )
    db = open_database(settings)
    if on_connect:
        event.listen(db.engine.sync_engine, "connect", on_connect, insert=True)
    engine = DialogEngine(db, link_secret=SECRET, tagger=PlainTagger())
    bot = make_transport(transport, engine, settings)
    polling = asyncio.create_task(bot.run_polling())
    try:
        yield bot
    finally:
        await bot.stop()
        await polling
        await bot.close()
        await engine.tagging.drain()
        await db.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "minyi.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    asyncio.run(_truncate(postgres_database))
    return postgres_database


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh database of the kind the test's parameter names ("sqlite" or "postgres")."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def recording() -> AsyncIterator[RecordingTelegram]:
    async with RecordingTelegram() as fake:
        yield fake


@pytest.mark.parametrize("transport", ["aiogram", "ptb"])
async def test_bot_api_errors_and_slow_answers_lose_nothing(
    transport: str, recording: RecordingTelegram, sqlite_url: str
) -> None:
    seeded = await seed(sqlite_url, migrate=False)

    async def misbehaving_api() -> None:
        rng = random.Random(3)
        for round_ in range(30):
            method = rng.choice(("sendMessage", "editMessageText", "answerCallbackQuery"))
            recording.fail_next(method, rng.choice((429, 500, 502, 503)))
            if round_ == 5:  # slower than PTB waits (5 s): it times out and sends again
                recording.set_delay("sendMessage", 5.5)
                await asyncio.sleep(0.2)
                recording.set_delay("sendMessage", 0.0)
            await asyncio.sleep(0.15)

    async with bot_in_process(recording, sqlite_url, transport):
        faults = asyncio.create_task(misbehaving_api())
        traces = await run_residents(recording, seeded, RESIDENTS, step_timeout=15)
        await faults
    assert any(call.status in (429, 500, 502, 503) for call in recording.calls)
    assert_clean(await audit(sqlite_url, recording, traces))


@pytest.mark.parametrize("transport", ["aiogram", "ptb"])
async def test_updates_delivered_twice_change_nothing(transport: str, sqlite_url: str) -> None:
    async with RecordingTelegram(redeliver=0.3, seed=5) as fake:
        seeded = await seed(sqlite_url, migrate=False)
        async with bot_in_process(fake, sqlite_url, transport):
            traces = await run_residents(fake, seeded, RESIDENTS, step_timeout=15)
        assert fake.redelivered > 10
        assert_clean(await audit(sqlite_url, fake, traces))


async def test_sqlite_locked_by_another_process_for_seconds(
    recording: RecordingTelegram, sqlite_url: str
) -> None:
    seeded = await seed(sqlite_url, migrate=False)
    path = sqlite_url.split("///", 1)[1]

    def hold_write_lock(seconds: float) -> None:
        # Another program (a backup, a script) keeps a write transaction open.
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO settings(key, value) VALUES ('held', 'x')")
        time.sleep(seconds)
        connection.execute("ROLLBACK")
        connection.close()

    async with bot_in_process(recording, sqlite_url, "aiogram"):
        load = asyncio.create_task(run_residents(recording, seeded, RESIDENTS, step_timeout=30))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(hold_write_lock, 3.0)
        traces = await load
    assert_clean(await audit(sqlite_url, recording, traces))


@pytest.mark.postgres
async def test_postgres_connections_dropped_mid_load(recording: RecordingTelegram, postgres_url: str) -> None:
    """What a PostgreSQL restart or failover does to the bot: every connection it holds is cut."""
    seeded = await seed(postgres_url, migrate=False)
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_async_engine(postgres_url, isolation_level="AUTOCOMMIT")
    cut = 0
    try:
        async with bot_in_process(recording, postgres_url, "aiogram"):
            load = asyncio.create_task(run_residents(recording, seeded, RESIDENTS, step_timeout=30))
            for _ in range(3):
                await asyncio.sleep(0.7)
                async with admin.connect() as connection:
                    result = await connection.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": name},
                    )
                    cut += int(result.scalar() or 0)
            traces = await load
    finally:
        await admin.dispose()
    assert cut > 0
    assert_clean(await audit(postgres_url, recording, traces))


@pytest.mark.postgres
async def test_postgres_connections_cut_while_the_bot_opens_them(
    recording: RecordingTelegram, postgres_url: str
) -> None:
    """A restart can end a connection while the pool is still setting it up; asyncpg then raises its own
    error, not SQLAlchemy's, and the update waiting for that connection must be retried all the same."""
    seeded = await seed(postgres_url, migrate=False)
    cutter = ConnectionCutter(postgres_url, limit=4)
    async with bot_in_process(recording, postgres_url, "aiogram", on_connect=cutter):
        traces = await run_residents(recording, seeded, RESIDENTS, step_timeout=30)
    assert len(cutter.cut) == 4
    assert_clean(await audit(postgres_url, recording, traces))


@pytest.mark.parametrize(
    ("transport", "webhook", "database"),
    # `database` names the fixture that gives the URL (resolved before the test's event loop runs).
    [
        # The production setup: a webhook POST is answered only after its commit, so Telegram posts an
        # update the dead process had not finished again to the restarted one.
        pytest.param("aiogram", True, "postgres", marks=pytest.mark.postgres, id="aiogram-webhook-postgres"),
        # `minyi run` as it starts by default: the poller confirms an update only once it was handled.
        pytest.param("aiogram", False, "sqlite", id="aiogram-polling-sqlite"),
        pytest.param("ptb", False, "sqlite", id="ptb-polling-sqlite"),
    ],
    indirect=["database"],
)
async def test_bot_killed_and_restarted_mid_load(
    transport: str,
    webhook: bool,
    database: str,
    recording: RecordingTelegram,
    tmp_path: Path,
) -> None:
    """SIGKILL of `minyi run` with updates in hand, then a restart: every resident finishes, nothing is lost
    or stored twice. (SIGKILL exactly between commit and reply is tests/bot/test_crash_recovery.py's.)"""
    database_url = database
    seeded = await seed(database_url, migrate=False)
    bot = BotProcess.minyi(recording, database_url, transport, webhook=webhook)
    await bot.start(tmp_path / "bot.log")
    try:
        load = asyncio.create_task(run_residents(recording, seeded, RESIDENTS, step_timeout=6))
        # Kill as soon as answers are flowing: some updates are committed but not yet answered.
        while sum(len(ids) for ids in recording.sent.values()) < RESIDENTS * 4:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await bot.kill()
        await bot.start(tmp_path / "bot.log")
        traces = await load
    finally:
        await bot.stop()
    assert_clean(await audit(database_url, recording, traces))


@pytest.mark.postgres
async def test_one_residents_taps_reach_two_processes_at_once(
    recording: RecordingTelegram, postgres_url: str, tmp_path: Path
) -> None:
    """Two bot processes on one PostgreSQL get one resident's taps at the same moment: the row lock
    makes them take turns, so no tick of a multiple-choice question is lost to the other process."""
    seeded = await seed(postgres_url, migrate=False)
    secret = "two-process-secret"
    workers = [
        BotProcess.minyi(
            recording,
            postgres_url,
            "aiogram",
            webhook=True,
            # A small pool each: the two processes and the tests running beside them share PostgreSQL's
            # 100 connections.
            extra_env={"MINYI_WEBHOOK_SECRET": secret, "MINYI_CONCURRENCY": "8"},
        )
        for _ in range(2)
    ]
    for worker in workers:
        await worker.start(tmp_path / "bot.log")
    try:
        user = recording.user(700_001)
        message = (await user.send(seeded.start(0), timeout=30))[-1]
        rng = random.Random(1)
        while not any(
            data.startswith(cb.TOGGLE + cb.SEPARATOR) for row in message.buttons for _, data in row
        ):
            message = await answer_step(user, rng, message)
        ticks = [
            data for row in message.buttons for _, data in row if data.startswith(cb.TOGGLE + cb.SEPARATOR)
        ]
        ticks = [data for data in ticks if data.split(cb.SEPARATOR)[3] != "none"]
        assert len(ticks) >= 5
        updates = []
        for index, data in enumerate(ticks):
            callback = recording.new_callback(user.chat_id)
            query = {"id": callback.callback_id, "from": user.user_dict, "message": message.raw,
                     "chat_instance": "1", "data": data}  # fmt: skip
            updates.append({"update_id": 50_000_000 + index, "callback_query": query})
        ports = [int(worker.env["MINYI_WEBHOOK_PORT"]) for worker in workers]
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with aiohttp.ClientSession() as client:

            async def post(update: dict[str, object], port: int) -> int:
                url = f"http://127.0.0.1:{port}/telegram"
                async with client.post(url, json=update, headers=headers) as response:
                    return response.status

            statuses = await asyncio.gather(*(post(u, ports[i % 2]) for i, u in enumerate(updates)))
        assert statuses == [200] * len(updates)
    finally:
        for worker in workers:
            await worker.stop()
    async with Database(postgres_url) as db, db.reading() as session:
        handled = set((await session.scalars(select(ProcessedUpdate.update_id))).all())
        submission = (await session.scalars(select(Submission))).one()
    assert {u["update_id"] for u in updates} <= handled
    selected = submission.draft.get("selected", [])
    expected = [data.split(cb.SEPARATOR)[3] for data in ticks]
    assert sorted(selected) == sorted(expected), "a tick was lost: two processes changed the draft at once"


async def test_nothing_per_resident_stays_in_memory_after_they_finish(
    recording: RecordingTelegram, sqlite_url: str
) -> None:
    """Locks, framework state and caches are dropped when residents go quiet: memory stays flat."""
    seeded = await seed(sqlite_url, migrate=False)
    async with bot_in_process(recording, sqlite_url, "aiogram") as bot:
        traces = await run_residents(recording, seeded, 5, step_timeout=15)
        assert isinstance(bot, AiogramTransport)
        assert len(bot.engine.locks) == 0
        assert len(bot.engine._questionnaires) <= QUESTIONNAIRE_CACHE
        assert len(bot.engine.answers) == 0  # answers are remembered only while a questionnaire is open
        # aiogram's FSM, were it on, would hold a record for every resident it ever saw.
        assert isinstance(bot.dispatcher.fsm.storage, MemoryStorage)
        assert len(bot.dispatcher.fsm.storage.storage) == 0
    assert_clean(await audit(sqlite_url, recording, traces))
