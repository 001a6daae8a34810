"""Old update ids are forgotten, recent ones kept, on SQLite and PostgreSQL, and the bot's background loop
does it on its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert

from bot.dispatch import Dispatch
from bot.engine import DialogEngine
from bot.fakeapi import FakeTelegram
from minyi.wiring import make_transport
from storage import housekeeping
from storage.database import Database
from storage.models import ProcessedUpdate, utcnow
from tests.bot.staff_support import fast_settings, wait_until
from tests.conftest import LINK_SECRET, bot_settings, processed_update_ids


async def add_update_ids(db: Database, ages: dict[int, timedelta]) -> None:
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(ProcessedUpdate), [{"update_id": i, "processed_at": now - age} for i, age in ages.items()]
        )


async def test_update_ids_older_than_any_redelivery_are_forgotten(db: Database) -> None:
    await add_update_ids(
        db,
        {
            1: timedelta(days=30),
            2: housekeeping.KEEP_UPDATE_IDS + timedelta(minutes=1),
            3: housekeeping.KEEP_UPDATE_IDS - timedelta(minutes=1),  # Telegram might still redeliver it
            4: timedelta(seconds=1),
        },
    )
    async with db.transaction() as session:
        assert await housekeeping.forget_old_update_ids(session) == 2
    assert await processed_update_ids(db) == [3, 4]
    async with db.transaction() as session:
        assert await housekeeping.forget_old_update_ids(session) == 0


async def test_the_bots_background_loop_forgets_them(db: Database, fake: FakeTelegram) -> None:
    await add_update_ids(db, {10: timedelta(days=3), 11: timedelta(hours=1)})
    engine = DialogEngine(db, bot_username=fake.bot_username, link_secret=LINK_SECRET)
    transport = make_transport("aiogram", engine, bot_settings(fake, db))
    dispatch = Dispatch(db, transport, fast_settings())
    running = asyncio.create_task(dispatch.run())
    try:

        async def only_the_recent_one_left() -> bool:
            return await processed_update_ids(db) == [11]

        await wait_until(only_the_recent_one_left, 10, "the old update id forgotten")
    finally:
        dispatch.stop()
        await running
        await transport.close()
