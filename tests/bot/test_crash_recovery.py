"""A bot process killed (SIGKILL) mid-dialog and started again loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import texts
from bot.fakeapi import FakeTelegram
from storage.database import Database
from storage.models import Answer
from tests.conftest import LINK_SECRET, ROOT, create_project

STARTUP_TIMEOUT = 60.0


async def start_process(fake: FakeTelegram, database_url: str, transport: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "MINYI_DATABASE_URL": database_url,
        "MINYI_BOT_TOKEN": fake.token,
        "MINYI_TELEGRAM_API_URL": fake.url,
        "MINYI_SECRET_KEY": LINK_SECRET.hex(),
    }
    starts_before = len(fake.calls_of("deleteWebhook"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        "run",
        "--transport",
        transport,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT

    async def wait(method: str, count: int) -> None:
        # Counting calls of this process only: a long poll of a killed one may still complete.
        while len(fake.calls_of(method)) <= count:
            if process.returncode is not None or time.monotonic() > deadline:
                stderr = await process.stderr.read() if process.stderr else b""
                raise AssertionError(f"bot did not start: {stderr.decode()[-2000:]}")
            await asyncio.sleep(0.1)

    await wait("deleteWebhook", starts_before)  # both transports clear any webhook before polling
    await wait("getUpdates", len(fake.calls_of("getUpdates")))
    return process


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def answers(db: Database) -> list[tuple[str, object, int]]:
    async with db.reading() as session:
        rows = await session.scalars(select(Answer).order_by(Answer.seq))
        return [(a.question_code, a.value["v"], a.seq) for a in rows]


@pytest.mark.parametrize("transport", ["aiogram", "ptb"])
async def test_killed_between_commit_and_reply_the_resident_continues(
    transport: str,
    fake: FakeTelegram,
    db: Database,
    database_url: str,
    processes: list[asyncio.subprocess.Process],
) -> None:
    project = await create_project(db)
    processes.append(await start_process(fake, database_url, transport))
    user = fake.user()
    await user.send(project.start())
    await user.click("同意")
    await user.click("产权人")
    # Die in the middle of replying: the answer is committed, the Bot API has not answered the bot yet
    # (the simulator shows the message at once but holds its response), so the update may come again.
    fake.set_delay("sendMessage", 30.0)
    await user.send("能接受")
    deadline = time.monotonic() + 20
    while [code for code, *_ in await answers(db)] != ["relation", "compensation"]:
        assert time.monotonic() < deadline, await answers(db)
        await asyncio.sleep(0.05)
    processes[0].send_signal(signal.SIGKILL)
    await processes[0].wait()
    fake.set_delay("sendMessage", 0.0)

    processes.append(await start_process(fake, database_url, transport))
    # The unconfirmed update comes again; it was handled, so it changes nothing.
    welcome = (await user.send("/start"))[-1]
    assert texts.WELCOME_BACK in welcome.text and "工程有必要吗" in welcome.text
    await user.click("3", message=welcome)
    assert await answers(db) == [("relation", "owner", 1), ("compensation", "yes", 2), ("necessity", 3, 3)]
    assert fake.pending_updates() == 0
