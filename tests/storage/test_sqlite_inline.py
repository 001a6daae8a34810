"""SQLite on the event loop's thread: waiting for another process's write lock never stalls the loop,
and a lock held past the busy timeout fails the statement instead of waiting for ever."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage import database, sqlite_inline
from storage.database import Database


def hold_write_lock(path: Path, seconds: float, holding: threading.Event) -> None:
    """Another program (a backup, a script) keeps a write transaction open for `seconds`."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    holding.set()
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


async def ticks_while(work: asyncio.Future[None]) -> int:
    """How often the loop got round to a 10 ms timer while `work` ran."""
    count = 0
    while not work.done():
        await asyncio.sleep(0.01)
        count += 1
    return count


async def test_a_writer_waiting_for_another_process_leaves_the_loop_free(tmp_path: Path) -> None:
    path = tmp_path / "minyi.db"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        holding = threading.Event()
        holder = asyncio.create_task(asyncio.to_thread(hold_write_lock, path, 1.0, holding))
        await asyncio.to_thread(holding.wait)
        started = time.monotonic()

        async def write() -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))

        writing = asyncio.ensure_future(write())
        ticks = await ticks_while(writing)
        await writing
        await holder
        waited = time.monotonic() - started
        async with db.reading() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    assert waited >= 0.8, "the write did not wait for the other process's lock"
    # A blocking wait would have let the timer run once or twice; a free loop runs it every 10 ms or so.
    assert ticks >= 10, f"the loop was blocked while the writer waited ({ticks} ticks in {waited:.1f} s)"


async def test_a_lock_held_past_the_busy_timeout_fails_the_statement(tmp_path: Path) -> None:
    path = tmp_path / "minyi.db"
    sqlite3.connect(path).close()
    holding = threading.Event()
    holder = asyncio.create_task(asyncio.to_thread(hold_write_lock, path, 1.0, holding))
    await asyncio.to_thread(holding.wait)
    connection = await sqlite_inline.connect(str(path), busy_timeout=0.2)
    connection.isolation_level = None
    cursor = connection.cursor()
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await cursor.execute("BEGIN IMMEDIATE")
    assert time.monotonic() - started >= 0.2, "gave up before its busy timeout"
    assert not holder.done(), "waited for the lock to be released instead of giving up after 0.2 s"
    await connection.close()
    await holder


async def test_a_transaction_that_cannot_begin_says_so_as_sqlalchemy_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN IMMEDIATE goes straight to the driver; when the lock stays taken past the busy timeout, the
    error is SQLAlchemy's OperationalError all the same, which the engine retries, and nothing is left
    half begun."""
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT", 0.2)
    path = tmp_path / "minyi.db"
    sqlite3.connect(path).close()
    holding = threading.Event()
    holder = asyncio.create_task(asyncio.to_thread(hold_write_lock, path, 1.0, holding))
    await asyncio.to_thread(holding.wait)
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        with pytest.raises(OperationalError, match="locked") as raised:
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
        assert database.is_transient(raised.value)
        assert not holder.done(), "waited for the lock instead of giving up after 0.2 s"
        await holder
        async with db.transaction() as session:  # the connection is usable again
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
