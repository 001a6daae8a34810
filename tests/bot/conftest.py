"""Fixtures of the bot tests: a bot with its outreach loop (alerts, pushes, notices) on either transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.fakeapi import FakeTelegram
from bot.push import Clock, PushSettings, SystemClock
from storage.database import Database
from tests.bot.staff_support import StaffBot, fast_settings

MakeStaffBot = Callable[..., Awaitable[StaffBot]]


@pytest.fixture(params=["aiogram", "ptb"])
def staff_transport(request: pytest.FixtureRequest) -> str:
    """Both transports, unless a test names its pairs of transport and database (see ONE_EACH)."""
    return str(request.param)


@pytest.fixture
async def staff_bot_factory(
    staff_transport: str, fake: FakeTelegram, db: Database
) -> AsyncIterator[MakeStaffBot]:
    """Starts a bot with `make(settings, clock)`; several may run one after another (restarts)."""
    bots: list[StaffBot] = []

    async def make(settings: PushSettings | None = None, clock: Clock | None = None) -> StaffBot:
        bot = StaffBot(staff_transport, fake, db, settings or fast_settings(), clock or SystemClock())
        await bot.start()
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop()


@pytest.fixture
async def staff_bot(staff_bot_factory: MakeStaffBot) -> StaffBot:
    return await staff_bot_factory()
