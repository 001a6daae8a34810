"""A bot process killed (SIGKILL) mid-dialog and started again loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import texts
from bot.fakeapi import FakeTelegram
from minyi.processes import BotProcess, start_bot_process
from storage.database import Database
from storage.models import Answer
from tests.conftest import bot_settings, create_project


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.kill()


async def answers(db: Database) -> list[tuple[str, object, int]]:
    async with db.reading() as session:
        rows = await session.scalars(select(Answer).order_by(Answer.seq))
        return [(a.question_code, a.value["v"], a.seq) for a in rows]


@pytest.mark.parametrize("transport", ["aiogram", "ptb"])
async def test_killed_between_commit_and_reply_the_resident_continues(
    transport: str, fake: FakeTelegram, db: Database, processes: list[BotProcess]
) -> None:
    project = await create_project(db)
    settings = bot_settings(fake, db)
    processes.append(await start_bot_process(fake, settings, transport))
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
    await processes[0].kill()
    fake.set_delay("sendMessage", 0.0)

    processes.append(await start_bot_process(fake, settings, transport))
    # The unconfirmed update comes again; it was handled, so it changes nothing.
    welcome = (await user.send("/start"))[-1]
    assert texts.WELCOME_BACK in welcome.text and "工程有必要吗" in welcome.text
    await user.click("3", message=welcome)
    assert await answers(db) == [("relation", "owner", 1), ("compensation", "yes", 2), ("necessity", 3, 3)]
    # Each update is confirmed to Telegram once handled, with the bot's next poll.
    deadline = time.monotonic() + 10
    while fake.pending_updates():
        assert time.monotonic() < deadline, "an update was never confirmed"
        await asyncio.sleep(0.05)
