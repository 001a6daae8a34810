"""Which database failures are worth running a transaction again for, and what survives one: real errors
from real databases."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from sqlalchemy import event, insert, text

from storage.database import Database, is_transient
from storage.models import ProcessedUpdate, utcnow
from tests.conftest import ConnectionCutter, processed_update_ids


async def test_a_transaction_commits_when_its_block_ends_and_rolls_back_when_it_raises(db: Database) -> None:
    pool = db.engine.pool
    async with db.transaction() as session:
        await session.execute(insert(ProcessedUpdate).values(update_id=1, processed_at=utcnow()))
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
    assert pool.checkedout() == 0, "the connection did not go back to the pool"  # type: ignore[attr-defined]
    assert await processed_update_ids(db) == [1]
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(insert(ProcessedUpdate).values(update_id=2, processed_at=utcnow()))
            session.add(ProcessedUpdate(update_id=3, processed_at=utcnow()))  # pending, not yet flushed
            raise RuntimeError("the update failed half way")
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await processed_update_ids(db) == [1]
    async with db.transaction() as session:  # nothing was left holding SQLite's write lock
        session.add(ProcessedUpdate(update_id=4, processed_at=utcnow()))  # flushed by the commit
    assert await processed_update_ids(db) == [1, 4]


async def test_what_a_transaction_loaded_can_be_saved_by_the_next_one(db: Database) -> None:
    """Its objects leave with the commit, as they would if the session closed, even while something still
    holds the session (a turn's after-commit work): the next transaction can take them on."""
    async with db.transaction() as session:
        claimed = ProcessedUpdate(update_id=6, processed_at=utcnow())
        session.add(claimed)
        first = session
    later = utcnow()
    async with db.transaction() as session:
        assert session is not first
        claimed.processed_at = later
        session.add(claimed)  # "already attached to session" if the first one had kept it
    async with db.reading() as session:
        stored = await session.get(ProcessedUpdate, 6)
        assert stored is not None and stored.processed_at == later


async def test_an_update_cancelled_mid_transaction_gives_its_connection_back(db: Database) -> None:
    started = asyncio.Event()

    async def update() -> None:
        async with db.transaction() as session:
            await session.execute(insert(ProcessedUpdate).values(update_id=5, processed_at=utcnow()))
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(update())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)  # the shielded close finishes on its own
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await processed_update_ids(db) == []


async def test_a_broken_constraint_is_not_retried(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(insert(ProcessedUpdate).values(update_id=1, processed_at=utcnow()))
    with pytest.raises(Exception) as raised:
        async with db.transaction() as session:
            await session.execute(insert(ProcessedUpdate).values(update_id=1, processed_at=utcnow()))
    assert not is_transient(raised.value)


@pytest.mark.postgres
async def test_a_connection_postgresql_ended_is_retried_and_misusing_one_is_not(
    postgres_database: str,
) -> None:
    url = postgres_database.replace("+asyncpg", "")
    connection = await asyncpg.connect(url)
    try:
        # Two queries at once on one connection: our own mistake, which a retry would only repeat.
        results = await asyncio.gather(
            connection.fetchval("SELECT pg_sleep(0.2)"),
            connection.fetchval("SELECT 1"),
            return_exceptions=True,
        )
        misuse = next(result for result in results if isinstance(result, BaseException))
        assert isinstance(misuse, asyncpg.exceptions.InterfaceError)
        assert not is_transient(misuse)

        admin = await asyncpg.connect(url)
        await admin.execute("SELECT pg_terminate_backend($1, 5000)", connection.get_server_pid())
        await admin.close()
        with pytest.raises(Exception) as raised:
            await connection.fetchval("SELECT 1")
        assert is_transient(raised.value), repr(raised.value)
    finally:
        connection.terminate()


@pytest.mark.postgres
async def test_a_connection_cut_while_opening_the_pool_ahead_does_not_stop_the_start(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening the pool's connections at start-up only saves the first updates a wait: a connection
    PostgreSQL cuts meanwhile (as a restart does) leaves the rest to open on demand, and the bot starts."""
    db = Database(postgres_database, pool_size=4, max_overflow=0, pre_ping=False)
    cutter = ConnectionCutter(postgres_database, limit=1)
    event.listen(db.engine.sync_engine, "connect", cutter, insert=True)
    try:
        with caplog.at_level(logging.WARNING, logger="storage.database"):
            await db.open_connections(4)
        assert cutter.cut, "the hook never ran"
        assert "the rest open when needed" in caplog.text
        async with db.transaction() as session:  # the next connection is a good one
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()
