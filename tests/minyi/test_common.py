"""What every command shares: the event loop its coroutine runs on."""

from __future__ import annotations

import asyncio

import pytest

from minyi.commands.common import run


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINYI_EVENT_LOOP", raising=False)
    assert run(loop_module()).startswith("uvloop")


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINYI_EVENT_LOOP", " Asyncio ")
    assert run(loop_module()).startswith("asyncio")
