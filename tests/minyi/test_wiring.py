"""The bot's wiring: its database pool is opened at start-up, and a full load opens no more."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from bot.transports.polling import MOST_IN_HAND
from minyi.settings import Settings
from minyi.wiring import open_database, pool_size


@pytest.mark.postgres
async def test_the_bot_opens_its_pool_at_start_and_a_full_load_opens_no_more(postgres_database: str) -> None:
    settings = Settings(database_url=postgres_database)
    db = open_database(settings)
    opened: list[Any] = []
    event.listen(db.engine.sync_engine, "connect", lambda connection, _record: opened.append(connection))
    try:
        await db.open_connections(pool_size(settings))
        assert len(opened) == pool_size(settings) and db.engine.pool.checkedin() == pool_size(settings)

        # As many transactions at once as the bot handles updates, each holding its connection a while.
        async def update() -> None:
            async with db.transaction() as session:
                await session.execute(text("SELECT pg_sleep(0.05)"))

        for _ in range(3):
            await asyncio.gather(*(update() for _ in range(MOST_IN_HAND)))
        assert len(opened) == pool_size(settings), "connections were opened (and closed) under load"
    finally:
        await db.dispose()
