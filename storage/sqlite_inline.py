"""SQLite on the event loop's own thread: what SQLAlchemy's aiosqlite dialect uses of aiosqlite, calling
sqlite3 directly instead of through a worker thread.

Why: Minyi's statements are indexed look-ups and single-row writes that SQLite runs in microseconds,
while each hop to aiosqlite's thread and back cost the bot about 45 µs of CPU, three or four hops per
statement: on SQLite that was most of the bot's time per update. Run inline, a statement blocks the loop
only for as long as SQLite takes.

What must not block is waiting for another process's lock. The connection's own busy timeout is zero:
a statement that finds the database locked fails at once (SQLITE_BUSY, which leaves nothing half done),
and is tried again after an asyncio sleep, for up to `busy_timeout` seconds in all, so the loop goes on
serving everyone else meanwhile. In WAL mode only a writer's `BEGIN IMMEDIATE` waits for another writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")
FIRST_WAIT = 0.001  # seconds before trying a locked statement again, doubling each time ...
LONGEST_WAIT = 0.02  # ... up to this, so a lock released is noticed within 20 ms


async def connect(path: str, *, busy_timeout: float) -> Connection:
    # check_same_thread=False: SQLAlchemy's pool may close a connection from the thread that collects
    # garbage; every statement still runs on the loop's thread.
    return Connection(sqlite3.connect(path, timeout=0, check_same_thread=False), busy_timeout)


class Connection:
    """The part of aiosqlite.Connection that SQLAlchemy uses (including two of its private attributes), and
    `begin`, which storage.database's begin hook calls instead of running BEGIN as a statement."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # SQLAlchemy: None once closed
        self._tx = _RunNow()  # SQLAlchemy sets isolation_level through aiosqlite's queue
        self.busy_timeout = busy_timeout

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None) -> None:
        self._conn.isolation_level = value

    def cursor(self) -> Cursor:
        return Cursor(self, self._conn.cursor())

    async def begin(self, *, immediate: bool) -> None:
        """Begin a transaction; `immediate` takes the write lock now, waiting for another writer's."""
        await self.run(self._conn.execute, "BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement on the connection itself (storage.database's driver transactions)."""
        return await self.run(self._conn.execute, sql, parameters)

    async def commit(self) -> None:
        await self.run(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)`, tried again without blocking the loop while another process holds the lock."""
        deadline = time.monotonic() + self.busy_timeout
        wait = FIRST_WAIT
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)


class Cursor:
    """The part of aiosqlite.Cursor that SQLAlchemy uses."""

    def __init__(self, connection: Connection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        await self._connection.run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]) -> Cursor:
        # Materialised first: a retry after SQLITE_BUSY must see the parameters again.
        await self._connection.run(self._cursor.executemany, sql, list(parameters))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunNow:
    """Stands in for aiosqlite's queue to its thread: runs what is put in it at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, call = item
        try:
            future.set_result(call())
        except Exception as error:
            future.set_exception(error)
