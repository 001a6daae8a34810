"""Engine and session factories for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg.exceptions
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only, greenlet_spawn

from storage import sqlite_inline

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another process's write lock before giving up (seconds).
# Generous on purpose: a burst must queue, never fail with "database is locked".
SQLITE_BUSY_TIMEOUT = 30.0
READ_ONLY = "minyi_read_only"

# What the drivers say when the database was busy or went away for a moment (lower case).
_TRANSIENT_WORDS = (
    "database is locked",
    "deadlock",
    "could not serialize",
    "connection",
    "terminating",
    # asyncpg's CannotConnectNowError while PostgreSQL restarts
    "shutting down",
    "starting up",
)


# What opening or using a connection raises when the database cannot be reached, refuses us or ends the
# connection: SQLAlchemy's wrapped errors, the network's, and asyncpg's own, which escape SQLAlchemy when
# the connection is cut while SQLAlchemy sets it up (its JSON codecs). Commands turn these into one line.
UNAVAILABLE = (
    DBAPIError,
    OSError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def is_transient(error: BaseException) -> bool:
    """Whether a transaction that failed with `error` may succeed if run again: the database was locked
    or busy, is restarting, or cut the connection. Anything else (a constraint, a bug) would fail again."""
    if isinstance(error, OSError):
        return True  # connection refused or reset: the server is restarting
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or _says_transient(error.orig)
    # A connection cut while SQLAlchemy sets it up (its JSON codecs, on a connection fresh from the pool)
    # raises asyncpg's own error, untranslated: seen when PostgreSQL ends every backend under load.
    if isinstance(
        error,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InternalClientError,  # "cannot switch to state": the protocol saw the cut
    ):
        return True
    if isinstance(error, asyncpg.exceptions.TransactionRollbackError | sqlite3.OperationalError):
        return _says_transient(error)  # raised by the driver itself (storage.direct): a deadlock, a lock
    if isinstance(error, asyncpg.exceptions.InterfaceError):
        return "connection is closed" in str(error)  # not "another operation is in progress": a bug
    return False


def _says_transient(error: BaseException | None) -> bool:
    message = str(error).lower()
    return any(words in message for words in _TRANSIENT_WORDS)


def _prepare_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes of the process in WAL mode
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when another
        # connection wrote in between (waiting for the lock would not help); taking the write lock up front
        # avoids it: only BEGIN IMMEDIATE ever waits, and storage.sqlite_inline waits without blocking.
        immediate = not connection.get_execution_options().get(READ_ONLY)
        driver: sqlite_inline.Connection = connection.connection.driver_connection
        # Straight to the driver: as a statement through SQLAlchemy, BEGIN cost the bot as much CPU as a
        # query. What it raises (a lock held past the busy timeout) still reaches callers wrapped by
        # SQLAlchemy, as its OperationalError.
        await_only(driver.begin(immediate=immediate))


class DriverConnection(Protocol):
    """A connection inside a transaction, spoken to in the driver's own SQL and values (see
    `Database.driver_transaction`)."""

    async def rows(self, sql: str, arguments: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Run one statement; the rows it returns (none for a statement without RETURNING)."""
        ...


class _Asyncpg:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def rows(self, sql: str, arguments: Sequence[Any]) -> Sequence[Sequence[Any]]:
        result: Sequence[Sequence[Any]] = await self.connection.fetch(sql, *arguments)
        return result


class _Sqlite:
    def __init__(self, connection: sqlite_inline.Connection) -> None:
        self.connection = connection

    async def rows(self, sql: str, arguments: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return (await self.connection.execute(sql, arguments)).fetchall()


async def _rolled_back(connection: Any) -> bool:
    """Roll back on asyncpg; False when the connection may not be used again: closed by the database, its
    protocol in disorder, or a statement of a cancelled update still running on it."""
    if connection.is_closed():
        return False
    try:
        await asyncio.shield(connection.execute("ROLLBACK"))
    except BaseException:  # failed, or cancelled again meanwhile: what state it is in is unknown
        return False
    return not connection.is_in_transaction()


class Database:
    """One database: the engine, a writer path and session factories.

    Writers use `transaction()`: on SQLite it also serialises writers within the process, so a burst queues
    on an asyncio lock instead of on SQLite's file lock. Readers use `reading()`.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        echo: bool = False,
        pre_ping: bool = True,
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # On the loop's thread, not aiosqlite's (see storage/sqlite_inline.py).
            path = str(Path(database).expanduser()) if database else ":memory:"
            options["async_creator"] = functools.partial(
                sqlite_inline.connect, path, busy_timeout=SQLITE_BUSY_TIMEOUT
            )
        else:
            # pre_ping tests each pooled connection before use (a round trip per transaction); callers that
            # retry on a dropped connection anyway, like the bot's engine, can do without it.
            overflow = pool_size if max_overflow is None else max_overflow
            options.update(
                pool_size=pool_size, max_overflow=overflow, pool_pre_ping=pre_ping, pool_timeout=60
            )
        self.engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            _prepare_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed when the block ends without error, rolled back otherwise."""
        lock = self._write_lock or contextlib.nullcontext()
        # The same transaction as `async with session, session.begin()` gives, for less of the bot's CPU (its
        # busiest path; `benchmarks/transaction.py`): the session begins with its first statement, and the
        # commit ends it and gives the connection back, so all that closing would still do is detach the
        # loaded objects (AsyncSession closes in a task of its own). After an error, closing rolls back;
        # shielded, as AsyncSession's own exit is, so that a cancelled update still gives its connection back.
        async with lock:
            session = self.sessions()
            try:
                yield session
                await session.commit()
            except BaseException:
                await asyncio.shield(session.close())
                raise
            session.expunge_all()

    @contextlib.asynccontextmanager
    async def driver_transaction(self) -> AsyncIterator[DriverConnection]:
        """A write transaction on the driver's own connection (asyncpg; sqlite3 through
        storage.sqlite_inline), taken from the same pool and committed or rolled back like `transaction()`.

        For the few statements the bot runs on nearly every update (storage.direct): through the session,
        SQLAlchemy's bookkeeping cost several times what the driver does. A connection the rollback
        cannot reach any more (the database cut it) is invalidated, so the pool does not hand it out again.
        """
        lock = self._write_lock or contextlib.nullcontext()
        async with lock:
            # The pool's own connection, without SQLAlchemy's Connection around it; giving it back (and
            # invalidating it) may talk to the driver, so those run where SQLAlchemy can wait on it.
            pooled = await self.engine.raw_connection()
            raw = pooled.driver_connection
            assert raw is not None
            # BEGIN, COMMIT and ROLLBACK as plain statements: asyncpg's transaction objects keep state on
            # the connection (a BEGIN cancelled half-way leaves it there), and SQLAlchemy's next
            # transaction on the connection would see it and open a savepoint instead.
            driver: DriverConnection = _Sqlite(raw) if self.is_sqlite else _Asyncpg(raw)
            try:
                if self.is_sqlite:
                    await raw.begin(immediate=True)
                else:
                    await raw.execute("BEGIN")
                yield driver
                if self.is_sqlite:
                    await raw.commit()
                elif await raw.execute("COMMIT") != "COMMIT":  # PostgreSQL's answer to a failed transaction
                    raise RuntimeError("the transaction failed and was rolled back")
            except BaseException as error:
                if self.is_sqlite:
                    await raw.rollback()
                elif not await _rolled_back(raw):
                    if raw.is_closed():
                        # The database cut it, so it most likely cut the pool's other connections too
                        # (a restart): as SQLAlchemy does on a disconnect, every connection opened before
                        # now is replaced when it is next checked out, instead of failing an update each.
                        self.engine.sync_engine.pool._invalidate(pooled, error, _checkin=False)
                    await asyncio.shield(greenlet_spawn(pooled.invalidate))  # never handed out again
                raise
            finally:
                await asyncio.shield(greenlet_spawn(pooled.close))

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._readers() as session, session.begin():
            yield session

    async def open_connections(self, count: int) -> None:
        """Open up to `count` pooled connections at once (PostgreSQL; SQLite needs no pool): a burst of
        updates right after start-up finds them ready instead of waiting while each is set up.

        Only a head start: when the database cuts a connection meanwhile (a restart), the rest open on
        demand, where the engine retries, instead of the bot failing to start."""
        if self.is_sqlite:
            return
        async with contextlib.AsyncExitStack() as held:
            for opened in range(count):
                try:
                    await held.enter_async_context(self.engine.connect())
                except Exception as error:
                    if not is_transient(error):
                        raise
                    log.warning(
                        "opened %d of %d database connections ahead (%s); the rest open when needed",
                        opened,
                        count,
                        error,
                    )
                    return

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.dispose()
