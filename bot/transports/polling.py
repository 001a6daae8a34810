"""Long polling that confirms an update to Telegram only after it was handled, so a killed bot loses none.

Telegram forgets every update below the `offset` of a getUpdates call. The frameworks' own polling loops
ask for the next batch while the previous one is still being handled, so a process killed at that
moment loses the updates it had fetched: those residents get no reply. Here the offset never passes an
update still in hand: a killed process's unhandled updates go to the next one, and the engine's
`update_id` check makes the ones it had handled but not yet confirmed harmless.

The price is that, while updates are in hand or queued, each poll hands them back again (Telegram returns
everything from the offset on); they are recognised by id and skipped. Polls are spaced so that this
stays small (see `benchmarks/README.md`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Handle = Callable[[dict[str, Any]], Awaitable[None]]
LIMIT = 100  # updates per getUpdates call: Telegram's maximum
MOST_IN_HAND = 40  # updates handled at once, and queued, at most: 80 of a batch of 100 come back each poll
# While updates are in hand, polls begin at most this often: each one returns all of them again. Asked as
# soon as the last answer came, at a steady 200 updates/s there was about one poll per update (3,833 polls
# for 4,900 updates), each an HTTP round trip and a JSON batch to decode; now, while the bot is busy, a new
# update may wait up to this long to be fetched. When nothing is in hand the poll is a long one, answered
# the moment an update arrives.
BUSY_POLL_SECONDS = 0.02
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # after a failed getUpdates, growing while it keeps failing


class PollingError(Exception):
    """Telegram refused the bot for good (wrong token): polling again cannot help."""


class Poller:
    """Fetches updates and hands each to `handle` as a task of its own, at most `concurrency` at a time,
    until `stop()`; then waits for the updates in hand and confirms them. One `run()` per poller.

    Fetched updates wait in a queue of up to `concurrency` until a slot is free, so a finished update's
    slot is filled at once, not after a round trip to Telegram; the queue is topped up when half empty.
    Queued updates are not confirmed either: the offset stays at the oldest update not yet handled.
    """

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
        # Every poll returns the updates in hand and queued first: with at most 40 of each, a batch of 100
        # still has room for new ones.
        self.concurrency = max(1, min(concurrency, MOST_IN_HAND))
        self.timeout = timeout
        self.allowed_updates = list(allowed_updates)
        self._in_hand: dict[int, asyncio.Task[None]] = {}
        self._queue: deque[dict[str, Any]] = deque()  # fetched, not started; in id order
        self._next = 0  # one past the highest update id fetched so far
        self._stopping = asyncio.Event()
        self._low = asyncio.Event()  # the queue fell below half

    def stop(self) -> None:
        self._stopping.set()

    @property
    def in_hand(self) -> int:
        return len(self._in_hand)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            failures = 0
            last_poll = -BUSY_POLL_SECONDS
            while not self._stopping.is_set():
                await self._wait_until_queue_is_low()
                if self._in_hand or self._queue:
                    await self._sleep(last_poll + BUSY_POLL_SECONDS - loop.time())
                if self._stopping.is_set():
                    break
                busy = bool(self._in_hand or self._queue)
                last_poll = loop.time()
                try:
                    updates = await self._get_updates(http, self._offset(), 0 if busy else self.timeout)
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
                self._add(updates)
            self._queue.clear()  # not started, not confirmed: Telegram keeps them for the next run
            if self._in_hand:
                await asyncio.wait(set(self._in_hand.values()))
            # Confirm what was handled, so a restart does not fetch it again (it would change nothing).
            with contextlib.suppress(Exception):
                await self._get_updates(http, self._offset(), 0, limit=1)

    def _offset(self) -> int:
        """The oldest update not yet handled: Telegram forgets everything below it."""
        if self._in_hand:
            return min(self._in_hand)  # started in id order: every queued update comes after these
        return int(self._queue[0]["update_id"]) if self._queue else self._next

    def _add(self, updates: list[dict[str, Any]]) -> None:
        """Queue the new updates in id order, as many as fit, and start what slots allow."""
        for update in sorted(updates, key=lambda u: int(u["update_id"])):
            update_id = int(update["update_id"])
            if update_id < self._next:
                continue  # in hand or queued, or handled and confirmed with the next call
            if len(self._queue) >= self.concurrency:
                break  # the rest come again with the next call
            self._queue.append(update)
            self._next = update_id + 1
        self._start_queued()

    def _start_queued(self) -> None:
        while self._queue and len(self._in_hand) < self.concurrency:
            update = self._queue.popleft()
            update_id = int(update["update_id"])
            task = asyncio.create_task(self._handle_one(update))
            self._in_hand[update_id] = task
            task.add_done_callback(functools.partial(self._done, update_id))
        if len(self._queue) < max(1, self.concurrency // 2):
            self._low.set()

    async def _handle_one(self, update: dict[str, Any]) -> None:
        try:
            await self.handle(update)
        except Exception:  # one bad update must not stop the others
            log.exception("update %s failed", update.get("update_id"))

    def _done(self, update_id: int, _task: asyncio.Task[None]) -> None:
        self._in_hand.pop(update_id, None)
        if not self._stopping.is_set():
            self._start_queued()  # the freed slot takes the next queued update at once

    async def _wait_until_queue_is_low(self) -> None:
        """Every poll returns all the updates in hand and queued, so ask only once the queue is half
        empty (at once while nothing is queued)."""
        while len(self._queue) >= max(1, self.concurrency // 2) and not self._stopping.is_set():
            self._low.clear()
            stopping = asyncio.create_task(self._stopping.wait())
            low = asyncio.create_task(self._low.wait())
            await asyncio.wait({stopping, low}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            low.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds` (none if not positive), or until the poller is stopped."""
        if seconds <= 0:
            return
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
                await asyncio.gather(request, return_exceptions=True)
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
