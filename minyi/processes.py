"""Starting `minyi run` as a child process against a Bot API server: for the demo, tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from bot.fakeapi import FakeTelegram
from minyi.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120.0  # importing the frameworks and loading the risk model on a busy machine


class BotStartError(Exception):
    """The bot process exited or hung before it took its first update."""


class BotProcess:
    """A bot in its own process, so it has a core of its own and can be killed like a real deployment."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self, seconds: float = 60.0) -> int:
        """SIGTERM, then wait (the bot finishes classifying); SIGKILL if it does not exit in time."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), seconds)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


def environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MINYI_DATABASE_URL": settings.database_url,
        "MINYI_BOT_TOKEN": settings.bot_token,
        "MINYI_TELEGRAM_API_URL": settings.telegram_api_url,
        "MINYI_BOT_USERNAME": settings.bot_username,
        "MINYI_SECRET_KEY": settings.secret_key,
    }


async def start_bot_process(
    fake: FakeTelegram,
    settings: Settings,
    transport: str,
    *,
    log: IO[bytes] | None = None,
) -> BotProcess:
    """Start `minyi run` and return once it polls `fake` for updates. Its output goes to `log`; without
    one, what it printed before it failed to start is told in the BotStartError."""
    with contextlib.ExitStack() as stack:
        output = log or stack.enter_context(tempfile.TemporaryFile())
        try:
            return await _start(fake, settings, transport, output)
        except BotStartError as error:
            if log is None:
                output.seek(0)
                printed = output.read().decode("utf-8", "replace").strip()[-3000:]
                raise BotStartError(f"{error}; it printed:\n{printed}") from None
            raise


async def _start(fake: FakeTelegram, settings: Settings, transport: str, log: IO[bytes]) -> BotProcess:
    starts_before = len(fake.calls_of("deleteWebhook"))
    polls_before = fake.polls_started
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        "run",
        "--transport",
        transport,
        cwd=ROOT,
        env=environment(settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + STARTUP_SECONDS

    async def wait(reached: Callable[[], bool]) -> None:
        while not reached():
            if process.returncode is not None:
                raise BotStartError(f"the bot exited during start-up with code {process.returncode}")
            if time.monotonic() > deadline:
                process.kill()
                raise BotStartError(f"the bot did not start within {STARTUP_SECONDS:.0f} s")
            await asyncio.sleep(0.1)

    # Counting this process's calls only: a long poll of an earlier, killed process may still complete.
    # Both transports clear any webhook before polling; then the first long poll arrives.
    await wait(lambda: len(fake.calls_of("deleteWebhook")) > starts_before)
    await wait(lambda: fake.polls_started > polls_before)
    return BotProcess(process)
