"""Forgetting what is no longer needed: update ids older than any redelivery Telegram could make."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate, utcnow

# Telegram keeps an undelivered update for at most 24 hours, so an id handled two days ago can never
# come again. Keeping ids for ever would also be wrong: after a week without updates Telegram starts
# its ids at a random number, which could meet an old one and have a new update ignored.
KEEP_UPDATE_IDS = timedelta(days=2)


async def forget_old_update_ids(session: AsyncSession, older_than: timedelta = KEEP_UPDATE_IDS) -> int:
    """Delete processed update ids handled more than `older_than` ago; returns how many."""
    result = await session.execute(
        delete(ProcessedUpdate)
        .where(ProcessedUpdate.processed_at < utcnow() - older_than)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
