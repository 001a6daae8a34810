"""The bot's wiring: its database pool is opened at start-up, and a full load opens no more."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bot.transports.base import WEBHOOK_CONNECTIONS
from bot.transports.polling import MOST_IN_HAND
from minyi.settings import Settings
from minyi.wiring import POOL_OVERFLOW, YOUNG_GENERATION, open_database, pool_size, settle_garbage_collector
from minyi.workers import worker_environment


@pytest.mark.postgres
async def test_the_bot_opens_its_pool_at_start_and_a_full_load_opens_no_more(postgres_database: str) -> None:
    settings = Settings(database_url=postgres_database)
    db = open_database(settings)
    opened: list[Any] = []
    event.listen(db.engine.sync_engine, "connect", lambda connection, _record: opened.append(connection))
    try:
        await db.open_connections(pool_size(settings))
        pool = db.engine.pool
        assert isinstance(pool, AsyncAdaptedQueuePool)
        assert len(opened) == pool_size(settings) and pool.checkedin() == pool_size(settings)

        # As many transactions at once as the bot handles updates, each holding its connection a while.
        async def update() -> None:
            async with db.transaction() as session:
                await session.execute(text("SELECT pg_sleep(0.05)"))

        for _ in range(3):
            await asyncio.gather(*(update() for _ in range(MOST_IN_HAND)))
        assert len(opened) == pool_size(settings), "connections were opened (and closed) under load"
    finally:
        await db.dispose()


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
def test_webhook_workers_share_the_updates_and_stay_within_postgres_connections(workers: int) -> None:
    """`minyi run --webhook --workers N` with the default MINYI_CONCURRENCY: the workers together handle
    as many updates at once as Telegram sends (40), and all their pools, overflow included, fit in
    PostgreSQL's default max_connections (100)."""
    env = worker_environment(workers, Settings().concurrency, {"MINYI_WEBHOOK_SECRET": ""})
    share = int(env["MINYI_CONCURRENCY"])
    assert share * workers >= WEBHOOK_CONNECTIONS
    assert workers * (pool_size(Settings(concurrency=share)) + POOL_OVERFLOW) <= 100
    assert env["MINYI_WEBHOOK_SECRET"], "the workers need one secret, made up when none is set"


def test_after_start_up_the_collector_leaves_what_start_up_built_and_young_objects_longer_alone() -> None:
    threshold = gc.get_threshold()
    built_at_start_up = [{"question": n} for n in range(1000)]
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() >= len(built_at_start_up)
        assert gc.get_threshold() == (YOUNG_GENERATION, threshold[1], threshold[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
