"""Bot processes started for the crash tests and the demo: a bot that cannot start says why."""

from __future__ import annotations

import pytest

from bot.fakeapi import FakeTelegram
from minyi.processes import BotStartError, start_bot_process
from minyi.settings import Settings
from tests.conftest import LINK_SECRET


async def test_a_bot_that_cannot_start_is_reported_with_what_it_printed(fake: FakeTelegram) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/nowhere",  # port 9: nothing listens
        bot_token=fake.token,
        telegram_api_url=fake.url,
        secret_key=LINK_SECRET.hex(),
    )
    with pytest.raises(BotStartError) as raised:
        await start_bot_process(fake, settings, "aiogram")
    message = str(raised.value)
    assert "exited during start-up with code 1" in message
    assert "cannot open the database" in message, message
