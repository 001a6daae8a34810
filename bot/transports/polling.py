"""Long polling that confirms an update to Telegram only after it was handled, so a killed bot loses none.

Telegram forgets every update below the `offset` of a getUpdates call. The frameworks' own polling loops
ask for the next batch while the previous one is still being handled, so a process killed at that
moment loses the updates it had fetched: those residents get no reply. Here the offset never passes an
update still in hand: a killed process's unhandled updates go to the next one, and the engine's
`update_id` check makes the ones it had handled but not yet confirmed harmless.

The price is that, while updates are in hand, each poll hands them back again (Telegram returns
everything from the offset on); they are recognised by id and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Handle = Callable[[dict[str, Any]], Awaitable[None]]
LIMIT = 100  # updates per getUpdates call: Telegram's maximum
GATHER_SECONDS = 0.005  # with every slot taken: how long to collect more free ones after the first
IDLE_SECONDS = 0.02  # with updates in hand and nothing new: how long before asking again
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # after a failed getUpdates, growing while it keeps failing


class PollingError(Exception):
    """Telegram refused the bot for good (wrong token): polling again cannot help."""


class Poller:
    """Fetches updates and hands each to `handle` as a task of its own, at most `concurrency` at a time,
    until `stop()`; then waits for the updates in hand and confirms them. One `run()` per poller."""

    def __init__(
        self,
        api_url: str,
        token: str,
        handle: Handle,
        *,
        concurrency: int = 64,
        timeout: int = 10,
        allowed_updates: Sequence[str] = ("message", "callback_query"),
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/bot{token}/getUpdates"
        self.handle = handle
        # Each poll returns the updates in hand first: leave room in a batch for new ones.
        self.concurrency = max(1, min(concurrency, LIMIT // 2))
        self.timeout = timeout
        self.allowed_updates = list(allowed_updates)
        self._in_hand: dict[int, asyncio.Task[None]] = {}
        self._next = 0  # one past the highest update id taken in hand so far
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def in_hand(self) -> int:
        return len(self._in_hand)

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            failures = 0
            while not self._stopping.is_set():
                await self._wait_for_room()
                if self._stopping.is_set():
                    break
                try:
                    updates = await self._get_updates(
                        http, self._offset(), 0 if self._in_hand else self.timeout
                    )
                except asyncio.CancelledError:
                    raise
                except PollingError:
                    raise
                except Exception as error:  # the network or Telegram has a bad moment: ask again later
                    pause = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                    failures += 1
                    log.warning("getUpdates failed (%s); trying again in %.1f s", error, pause)
                    await self._sleep(pause)
                    continue
                failures = 0
                if not self._take(updates) and self._in_hand:
                    # Only updates already in hand came back: wait until one is done or a moment passed.
                    await asyncio.wait(
                        set(self._in_hand.values()), timeout=IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
            if self._in_hand:
                await asyncio.wait(set(self._in_hand.values()))
            # Confirm what was handled, so a restart does not fetch it again (it would change nothing).
            with contextlib.suppress(Exception):
                await self._get_updates(http, self._next, 0, limit=1)

    def _offset(self) -> int:
        return min(self._in_hand) if self._in_hand else self._next

    def _take(self, updates: list[dict[str, Any]]) -> int:
        """Start the new updates in id order, as many as there is room for; returns how many."""
        started = 0
        for update in sorted(updates, key=lambda u: int(u["update_id"])):
            update_id = int(update["update_id"])
            if update_id < self._next:
                continue  # in hand, or handled and confirmed with the next call
            if len(self._in_hand) >= self.concurrency:
                break  # the rest come again with the next call
            task = asyncio.create_task(self._handle_one(update))
            self._in_hand[update_id] = task
            task.add_done_callback(functools.partial(self._done, update_id))
            self._next = update_id + 1
            started += 1
        return started

    async def _handle_one(self, update: dict[str, Any]) -> None:
        try:
            await self.handle(update)
        except Exception:  # one bad update must not stop the others
            log.exception("update %s failed", update.get("update_id"))

    def _done(self, update_id: int, _task: asyncio.Task[None]) -> None:
        self._in_hand.pop(update_id, None)
        self._room.set()

    async def _wait_for_room(self) -> None:
        """Until a quarter of the slots are free, or a moment after the first one is: every poll returns
        all the updates still in hand, so asking after each single one would fetch them over and over."""
        want = max(1, self.concurrency // 4)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while self.concurrency - len(self._in_hand) < want and not self._stopping.is_set():
            timeout = None
            if len(self._in_hand) < self.concurrency:
                deadline = deadline or loop.time() + GATHER_SECONDS
                timeout = deadline - loop.time()
                if timeout <= 0:
                    return
            self._room.clear()
            stopping = asyncio.create_task(self._stopping.wait())
            room = asyncio.create_task(self._room.wait())
            await asyncio.wait({stopping, room}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            room.cancel()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _get_updates(
        self, http: aiohttp.ClientSession, offset: int, wait: int, *, limit: int = LIMIT
    ) -> list[dict[str, Any]]:
        payload = {"offset": offset, "limit": limit, "timeout": wait, "allowed_updates": self.allowed_updates}
        stop_waiting = asyncio.create_task(self._stopping.wait())
        request = asyncio.create_task(self._post(http, payload, wait))
        try:
            # A long poll is abandoned when the bot stops; the updates stay with Telegram.
            done, _ = await asyncio.wait({request, stop_waiting}, return_when=asyncio.FIRST_COMPLETED)
            if request not in done and wait > 0:
                request.cancel()
                return []
            return await request
        finally:
            stop_waiting.cancel()

    async def _post(
        self, http: aiohttp.ClientSession, payload: dict[str, Any], wait: int
    ) -> list[dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=wait + 15)
        async with http.post(self.url, json=payload, timeout=timeout) as response:
            body = json.loads(await response.read())
        if response.status == 401 or response.status == 404:
            raise PollingError(f"the Bot API refused the token ({response.status})")
        if not body.get("ok"):
            raise RuntimeError(f"HTTP {response.status}: {body.get('description', '')}")
        result: list[dict[str, Any]] = body["result"]
        return result
