"""Push campaigns: pace messages within Telegram's limits, retry what may be retried, resume after a restart.

Delivery is at most once. A recipient is marked "sending" before the Bot API call and "sent" (or
blocked, failed) after it. A runner that stops cleanly puts back whoever it had not called yet; a runner
that dies leaves "sending" rows, which the next runner marks "unknown" and never sends again: an
invitation that might have arrived is not worth a duplicate. At most a window of about half a second of
sending is ever in that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Protocol
from zoneinfo import ZoneInfo

from bot import callbacks as cb
from bot import texts
from bot.messages import Button, Reply
from bot.outbound import Outbound, SendFailed
from storage import outreach
from storage.database import Database
from storage.models import Campaign, Project, RecipientState

log = logging.getLogger(__name__)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime:
        """The wall clock, aware; quiet hours are read from it."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local hours in which nothing but urgent alerts is sent; `start == end` means none."""

    start: clock_time
    end: clock_time
    zone: ZoneInfo

    @classmethod
    def parse(cls, spec: str, zone: str) -> QuietHours:
        """ "21:00-08:00" (wrapping midnight is fine); "" or "off" for no quiet hours."""
        try:
            tz = ZoneInfo(zone)
        except (KeyError, ValueError) as error:
            raise ValueError(f"unknown time zone {zone!r}") from error
        spec = spec.strip().lower()
        if spec in ("", "off", "none"):
            return cls(clock_time(0), clock_time(0), tz)
        first, sep, second = spec.partition("-")
        try:
            if not sep:
                raise ValueError(spec)
            return cls(clock_time.fromisoformat(first.strip()), clock_time.fromisoformat(second.strip()), tz)
        except ValueError as error:
            raise ValueError(f"quiet hours must look like 21:00-08:00, not {spec!r}") from error

    @property
    def enabled(self) -> bool:
        return self.start != self.end

    def active(self, moment: datetime) -> bool:
        if not self.enabled:
            return False
        local = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def resumes_at(self, moment: datetime) -> datetime:
        """The end of the quiet hours `moment` falls in (aware, in the local zone)."""
        local = moment.astimezone(self.zone)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)

    def label(self) -> tuple[str, str]:
        return self.start.strftime("%H:%M"), self.end.strftime("%H:%M")


@dataclass(frozen=True)
class PushSettings:
    """Pacing, retries and schedules of everything the bot sends on its own initiative."""

    rate: float = 25.0  # Bot API calls per second, overall; Telegram allows about 30
    per_chat_seconds: float = 1.0  # at most one call per chat per this many seconds
    quiet: QuietHours = field(default_factory=lambda: QuietHours.parse("21:00-08:00", "Asia/Shanghai"))
    server_retries: int = 5  # a 5xx answer is retried this often, with back-off doubling from `backoff`
    backoff: float = 1.0
    max_flood_waits: int = 30  # 429s for one message before it is given up as failed
    window_seconds: float = 0.5  # recipients marked "sending" ahead of their call: this much sending
    # Bot API calls under way at once: enough for the rate over a slow network, few enough that an HTTP
    # client's connection pool does not spend its time queueing.
    max_in_flight: int = 32
    poll_seconds: float = 1.0  # how often new campaigns, notices and alerts are looked for
    status_every: float = 3.0  # seconds between edits of a worker's progress message
    lease_seconds: float = 30.0  # a dead runner's campaigns are taken over after this long
    remind_after: timedelta | None = timedelta(days=3)  # None: no automatic reminders
    remind_check_seconds: float = 3600.0
    housekeeping_seconds: float = 3600.0  # how often old update ids are forgotten
    alert_admins_after: timedelta = timedelta(minutes=30)
    unrouted_retry_seconds: float = 15.0  # how often alerts nobody could receive are tried again

    @property
    def window(self) -> int:
        return max(1, math.ceil(self.rate * self.window_seconds))


class Pacer:
    """Paces every outgoing call: at most `rate` in any second and one per chat per `per_chat_seconds` as
    Telegram counts them, nothing at all during a flood wait (429 retry_after). Shared by campaigns,
    notices and alerts.

    Telegram counts a call when it arrives, which is somewhere between the moment it was started and the
    moment its answer came back. So a call is only started while fewer than `rate` calls are under way or
    came back within the last second; then no second of arrivals can hold more than `rate` calls, however
    much the network or a busy machine delays them. Within that, starts are spaced 1/rate apart. Callers
    pair every `acquire()` with a `release()` when the call is over.
    """

    def __init__(self, settings: PushSettings, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.spacing = 1.0 / settings.rate
        self.per_second = max(1, math.floor(settings.rate))
        self.per_chat = settings.per_chat_seconds
        self._next = 0.0
        self._paused_until = 0.0
        self._chat_next: dict[int, float] = {}
        self._busy_chats: Counter[int] = Counter()
        self._under_way = 0
        self._ended: deque[float] = deque()  # when calls came back, oldest first
        self.calls = 0

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` from now: a process that takes over sending waits one counting
        window, so the calls its predecessor made in its last second are not added to its own."""
        self._next = max(self._next, self.clock.monotonic() + seconds)

    def pause(self, seconds: float) -> None:
        """Telegram said to wait: nobody sends before then (calls already in flight may still land)."""
        until = self.clock.monotonic() + seconds
        self._paused_until = max(self._paused_until, until)
        self._next = max(self._next, self._paused_until)

    @property
    def paused(self) -> bool:
        return self.clock.monotonic() < self._paused_until

    async def acquire(self, chat_id: int) -> None:
        """Wait until a call to this chat may start. The slot is reserved before sleeping, so waiting
        callers line up instead of all waking for the same moment."""
        while True:
            now = self.clock.monotonic()
            ready = max(self._paused_until, self._chat_next.get(chat_id, 0.0))
            if self._busy_chats[chat_id]:
                ready = max(ready, now + self.spacing)  # the chat's previous call is not back yet
            if ready > now:
                await self.clock.sleep(ready - now)
                continue
            slot = max(now, self._next, self._chat_next.get(chat_id, 0.0))
            previous = self._chat_next.get(chat_id)
            self._next = slot + self.spacing
            self._chat_next[chat_id] = slot + self.per_chat
            if slot > now:
                await self.clock.sleep(slot - now)
            if self._paused_until <= slot and not self._busy_chats[chat_id]:
                await self._wait_for_room()
                if self._paused_until <= self.clock.monotonic():
                    self._under_way += 1
                    self._busy_chats[chat_id] += 1
                    self.calls += 1
                    self._forget_old_chats(slot)
                    return
            # A flood wait began while this caller slept: its slot is void, queue again after the wait.
            if previous is None:
                self._chat_next.pop(chat_id, None)
            else:
                self._chat_next[chat_id] = previous

    def release(self, chat_id: int) -> None:
        """The call that `acquire` allowed is over (answered, failed or cut off)."""
        now = self.clock.monotonic()
        self._under_way -= 1
        self._ended.append(now)
        self._busy_chats[chat_id] -= 1
        if self._busy_chats[chat_id] <= 0:
            del self._busy_chats[chat_id]
        # The next call to this chat arrives after this one did, by at least `per_chat` seconds.
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), now + self.per_chat)

    async def _wait_for_room(self) -> None:
        while True:
            now = self.clock.monotonic()
            while self._ended and self._ended[0] <= now - 1.0:
                self._ended.popleft()
            if self._under_way + len(self._ended) < self.per_second:
                return
            # Room comes back a second after the oldest answer, or when a call under way is answered.
            wait = self._ended[0] + 1.0 - now if self._ended else self.spacing
            await self.clock.sleep(max(wait, 0.001))

    def _forget_old_chats(self, now: float) -> None:
        if len(self._chat_next) > 50_000:
            self._chat_next = {chat: t for chat, t in self._chat_next.items() if t > now}


@dataclass(frozen=True, slots=True)
class Delivered:
    state: str  # a RecipientState; PENDING when no call was made (a clean stop while waiting)
    attempts: int = 0
    error: str = ""
    message_id: int | None = None


class Courier:
    """Makes Bot API calls for things nobody is waiting on: paced, retried, counted.

    A delivery can be cancelled while it waits for its slot or a back-off (it then returns PENDING:
    nothing was sent); `interrupt` cancels only those, so a clean stop never abandons a call halfway.
    """

    def __init__(self, outbound: Outbound, settings: PushSettings, clock: Clock | None = None) -> None:
        self.outbound = outbound
        self.settings = settings
        self.clock = clock or SystemClock()
        self.pacer = Pacer(settings, self.clock)
        self._calling: set[asyncio.Task[Delivered]] = set()
        self._slots = asyncio.Semaphore(settings.max_in_flight)

    def start(self, reply: Reply) -> asyncio.Task[Delivered]:
        return asyncio.create_task(self.deliver(reply))

    def interrupt(self, tasks: Iterable[asyncio.Task[Delivered]]) -> None:
        """Cancel the deliveries that are waiting; those inside a Bot API call run to its end."""
        for task in tasks:
            if task not in self._calling:
                task.cancel()

    async def deliver(self, reply: Reply) -> Delivered:
        attempts = server_errors = floods = 0
        while True:
            in_call = False
            try:
                # A slot first, then the pacer: a call then starts at the moment the pacer gave it.
                async with self._slots:
                    await self.pacer.acquire(reply.chat_id)
                    attempts += 1
                    in_call = True
                    message_id = await self._call(reply)
                return Delivered(RecipientState.SENT, attempts, message_id=message_id)
            except asyncio.CancelledError:
                if in_call:
                    raise  # cut off inside a call: whether it arrived is unknown (a crash)
                return Delivered(RecipientState.PENDING, attempts)  # every earlier attempt surely failed
            except SendFailed as error:
                failure, reason = error.failure, error.reason[:200]
                if failure.blocked:
                    return Delivered(RecipientState.BLOCKED, attempts, reason)
                if failure.ambiguous:
                    return Delivered(RecipientState.UNKNOWN, attempts, reason)
                if failure.flood:
                    floods += 1
                    self.pacer.pause(failure.delay)
                    if floods > self.settings.max_flood_waits:
                        return Delivered(RecipientState.FAILED, attempts, reason)
                    continue
                if not failure.retry or server_errors >= self.settings.server_retries:
                    return Delivered(RecipientState.FAILED, attempts, reason)
                server_errors += 1
            except Exception as error:  # unclassified: the call may have happened, so never repeat it
                log.exception("sending to chat %s failed unexpectedly", reply.chat_id)
                return Delivered(RecipientState.UNKNOWN, attempts, f"{type(error).__name__}: {error}"[:200])
            try:
                await self.clock.sleep(self.settings.backoff * 2 ** (server_errors - 1))
            except asyncio.CancelledError:
                return Delivered(RecipientState.PENDING, attempts)

    async def _call(self, reply: Reply) -> int | None:
        """One Bot API call, started right after `pacer.acquire`; the pacer hears when it is over."""
        task = asyncio.current_task()
        assert task is not None
        self._calling.add(task)
        try:
            return await self.outbound.send(reply)
        finally:
            self._calling.discard(task)
            self.pacer.release(reply.chat_id)


def opt_out_keyboard() -> tuple[tuple[Button, ...], ...]:
    return ((Button(texts.BUTTON_OPT_OUT, cb.encode(cb.OPT_OUT)),),)


def campaign_text(campaign: Campaign, title: str) -> str:
    template = texts.PUSH_REMINDER if campaign.kind == outreach.REMINDER else texts.PUSH_INVITE
    return template.format(title=title)


def status_text(title: str, total: int, counts: dict[str, int], *, quiet_until: str = "", done: bool) -> str:
    sent = counts.get(RecipientState.SENT, 0)
    text = texts.PUSH_STATUS.format(title=title, sent=sent, total=total)
    if blocked := counts.get(RecipientState.BLOCKED, 0):
        text += texts.PUSH_STATUS_BLOCKED.format(n=blocked)
    if failed := counts.get(RecipientState.FAILED, 0) + counts.get(RecipientState.UNKNOWN, 0):
        text += texts.PUSH_STATUS_FAILED.format(n=failed)
    if quiet_until:
        text += texts.PUSH_STATUS_QUIET.format(time=quiet_until)
    if done:
        text += texts.PUSH_STATUS_DONE
    return text


class CampaignRun:
    """Sends one campaign until every recipient is done, quiet hours allowing, or until stopped."""

    def __init__(self, db: Database, courier: Courier, campaign_id: int) -> None:
        self.db = db
        self.courier = courier
        self.settings = courier.settings
        self.campaign_id = campaign_id
        self._stopping = asyncio.Event()
        self._inflight: dict[asyncio.Task[Delivered], outreach.Claimed] = {}
        self._finished: list[outreach.Outcome] = []
        self._status_message: int | None = None
        self._status_shown = ""
        self._status_at = -math.inf

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        async with self.db.reading() as session:
            campaign = await session.get(Campaign, self.campaign_id)
            if campaign is None:
                return
            project = await session.get(Project, campaign.project_id)
        title = project.title if project else ""
        text = campaign_text(campaign, title)
        self._status_message = campaign.status_message_id
        try:
            await self._loop(campaign, title, text)
        except asyncio.CancelledError:
            # Cancelled is how a crash looks here: write nothing more, cut the calls off where they are.
            for task in self._inflight:
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            raise
        await self._settle()

    async def _loop(self, campaign: Campaign, title: str, text: str) -> None:
        clock = self.courier.clock
        quiet = self.settings.quiet
        while not self._stopping.is_set():
            now = clock.now()
            quiet_now = quiet.active(now)
            async with self.db.transaction() as session:
                await outreach.record_outcomes(session, self._finished)
                self._finished = []
                room = 0 if quiet_now else self.settings.window - len(self._inflight)
                claimed = await outreach.claim_recipients(session, campaign.id, room)
                counts = await outreach.campaign_counts(session, campaign.id)
                done = not claimed and not self._inflight and not quiet_now
                if done:
                    current = await session.get(Campaign, campaign.id)
                    if current is not None:
                        await outreach.finish_campaign(session, current, counts)
            for recipient in claimed:
                reply = Reply.send(recipient.chat_id, text, opt_out_keyboard())
                self._inflight[self.courier.start(reply)] = recipient
            resume = quiet.resumes_at(now).strftime("%H:%M") if quiet_now else ""
            await self._show_status(campaign, title, counts, quiet_until=resume, done=done)
            if done:
                return
            await self._wait_a_little(quiet_now)

    async def _wait_a_little(self, quiet_now: bool) -> None:
        """Collect finished deliveries; write them in batches of a tenth of a second, not one by one."""
        tick = min(self.settings.poll_seconds, 0.1)
        if quiet_now and not self._inflight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_seconds):
                    await self._stopping.wait()
            return
        if self._inflight:
            done, _ = await asyncio.wait(self._inflight, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            self._collect(done)
        await asyncio.sleep(tick / 2)
        self._collect({task for task in self._inflight if task.done()})

    def _collect(self, done: set[asyncio.Task[Delivered]]) -> None:
        for task in done:
            recipient = self._inflight.pop(task)
            # Cancelled before it ever ran: no call was made.
            result = Delivered(RecipientState.PENDING) if task.cancelled() else task.result()
            self._finished.append(
                outreach.Outcome(recipient.id, result.state, result.attempts, result.error, recipient.chat_id)
            )

    async def _settle(self) -> None:
        """A clean stop: cancel deliveries that are waiting, let calls in progress finish, write it all."""
        self.courier.interrupt(self._inflight)
        if self._inflight:
            await asyncio.wait(self._inflight)
            self._collect(set(self._inflight))
        if self._finished:
            async with self.db.transaction() as session:
                await outreach.record_outcomes(session, self._finished)
            self._finished = []

    async def _show_status(
        self, campaign: Campaign, title: str, counts: dict[str, int], *, quiet_until: str, done: bool
    ) -> None:
        if campaign.status_chat_id is None:
            return
        text = status_text(title, campaign.total, counts, quiet_until=quiet_until, done=done)
        clock = self.courier.clock
        due = done or clock.monotonic() - self._status_at >= self.settings.status_every
        if text == self._status_shown or not due:
            return
        self._status_at = clock.monotonic()
        if self._status_message is None:
            result = await self.courier.deliver(Reply.send(campaign.status_chat_id, text))
            if result.message_id is not None:
                self._status_message = result.message_id
                async with self.db.transaction() as session:
                    row = await session.get(Campaign, campaign.id)
                    if row is not None:
                        row.status_message_id = result.message_id
        else:
            await self.courier.deliver(Reply.edit(campaign.status_chat_id, self._status_message, text))
        self._status_shown = text
