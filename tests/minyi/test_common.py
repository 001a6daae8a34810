"""What every command shares: the event loop its coroutine runs on, and the database it opens."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from minyi.commands import CommandError
from minyi.commands.common import database, run
from minyi.settings import Settings
from tests.conftest import ConnectionCutter


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINYI_EVENT_LOOP", raising=False)
    assert run(loop_module()).startswith("uvloop")


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINYI_EVENT_LOOP", " Asyncio ")
    assert run(loop_module()).startswith("asyncio")


@pytest.mark.postgres
async def test_a_connection_cut_while_it_is_set_up_is_one_line(postgres_database: str) -> None:
    """PostgreSQL can end a connection while SQLAlchemy is still setting it up (its JSON codecs); asyncpg's
    own error escapes SQLAlchemy then, and a command must still refuse in one line, not a traceback."""
    cutter = ConnectionCutter(postgres_database, limit=1)
    # Before SQLAlchemy's own set-up of the connection, on every pool (the command opens its own).
    event.listen(Pool, "connect", cutter, insert=True)
    try:
        with pytest.raises(CommandError) as refused:
            async with database(Settings(database_url=postgres_database)):
                pass
    finally:
        event.remove(Pool, "connect", cutter)
    assert cutter.cut, "the hook never ran"
    message = str(refused.value)
    assert message.startswith("cannot open the database postgresql+asyncpg://"), message
    assert "connection" in message and "\n" not in message, message
