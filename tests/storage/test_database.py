"""Which database failures are worth running a transaction again for: real errors from real databases."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import insert

from storage.database import Database, is_transient
from storage.models import ProcessedUpdate, utcnow


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
