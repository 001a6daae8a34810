"""Push campaigns through the Bot API simulator: one message per resident within the rate limit, through
429 storms, 403s, 5xx answers, restarts and crashes; quiet hours; reminders; grievance notices."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Awaitable, Coroutine
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.engine import DialogEngine
from bot.fakeapi import ApiCall, FakeTelegram
from bot.push import CampaignRun, Courier, Pacer, QuietHours
from minyi.wiring import make_transport
from storage import outreach
from storage.database import Database
from storage.models import Answer, CampaignRecipient, Notification, Person, RecipientState
from tests.bot.conftest import MakeStaffBot
from tests.bot.staff_support import (
    NO_QUIET,
    ONE_EACH,
    ONE_EACH_CROSSED,
    ShiftedClock,
    StaffBot,
    add_residents,
    add_staff,
    campaign,
    campaign_done,
    fast_settings,
    most_in_any_window,
    push_to_grid,
    shanghai,
    wait_until,
)
from tests.conftest import LINK_SECRET, bot_settings, create_project

MESSAGES = ("sendMessage", "editMessageText", "sendPhoto")


class VirtualClock:
    """Time that passes only when someone sleeps: exact pacing checks without waiting."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)

    def now(self) -> datetime:
        return shanghai(12)


async def paced(pacer: Pacer, clock: VirtualClock, chat: int, takes: float = 0.0) -> float:
    """One call through the pacer that takes `takes` seconds; returns when it started."""
    await pacer.acquire(chat)
    started = clock.t
    clock.t += takes
    pacer.release(chat)
    return started


async def test_the_pacer_keeps_the_overall_rate_one_message_per_chat_per_second_and_flood_waits() -> None:
    clock = VirtualClock()
    pacer = Pacer(fast_settings(rate=25.0), clock)
    times = [await paced(pacer, clock, chat) for chat in range(500)]  # a campaign: every chat once
    assert most_in_any_window(times) <= 25
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert 0.95 * 25 < achieved <= 25  # busy, it sends at the limit

    again = []
    for n in range(10):  # one chat among others, such as a worker's status message
        started = await paced(pacer, clock, 7 if n % 2 else 1000 + n)
        if n % 2:
            again.append(started)
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in pairwise(again))

    pacer.pause(5.0)
    paused_at = clock.t
    times.append(await paced(pacer, clock, 2000))
    assert times[-1] >= paused_at + 5.0


class SharedVirtualClock(VirtualClock):
    """Virtual time for many tasks at once: when every task waits, time jumps to the earliest wake-up."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), self._order, future))
        await future

    async def run(self, *work: Coroutine[Any, Any, None]) -> None:
        tasks = [asyncio.create_task(w) for w in work]
        while not all(task.done() for task in tasks):
            for _ in range(20):  # let every task that can run reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                wake, _, future = heapq.heappop(self._sleepers)
                self.t = max(self.t, wake)
                future.set_result(None)
        await asyncio.gather(*tasks)


async def test_slow_answers_never_let_more_than_the_rate_arrive_in_one_second() -> None:
    """A call is counted by Telegram when it arrives, any time between its start and its answer: with
    answers taking up to 0.9 s, spacing starts alone would let up to twice the rate arrive in a second."""
    clock = SharedVirtualClock()
    pacer = Pacer(fast_settings(rate=10.0), clock)
    spans: list[tuple[float, float]] = []

    async def caller(first_chat: int) -> None:
        for n in range(6):
            chat = first_chat * 100 + n
            await pacer.acquire(chat)
            started = clock.t
            await clock.sleep(0.1 + (chat % 9) * 0.1)
            pacer.release(chat)
            spans.append((started, clock.t))

    await clock.run(*(caller(c) for c in range(30)))
    assert len(spans) == 180
    for moment in sorted({t for span in spans for t in span}):
        arrivals_possible = [s for s in spans if s[0] < moment + 1.0 and s[1] >= moment]
        assert len(arrivals_possible) <= 10
    assert spans[-1][0] - spans[0][0] < 180 / 10 * 2  # and it still gets through


def test_quiet_hours_wrap_midnight_in_the_configured_zone() -> None:
    quiet = QuietHours.parse("21:00-08:00", "Asia/Shanghai")
    assert quiet.active(shanghai(21)) and quiet.active(shanghai(23, 59)) and quiet.active(shanghai(7, 59))
    assert not quiet.active(shanghai(8)) and not quiet.active(shanghai(20, 59))
    assert quiet.resumes_at(shanghai(22)).strftime("%H:%M") == "08:00"
    assert quiet.resumes_at(shanghai(22)) - shanghai(22) == timedelta(hours=10)
    assert not NO_QUIET.active(shanghai(23))
    with pytest.raises(ValueError, match="21:00-08:00"):
        QuietHours.parse("nine to five", "Asia/Shanghai")


def sends(fake: FakeTelegram) -> list[ApiCall]:
    return [call for call in fake.calls if call.method in MESSAGES]


def delivered(fake: FakeTelegram, chat_ids: set[int]) -> int:
    return sum(
        1
        for c in fake.calls
        if c.method == "sendMessage" and c.status == 200 and c.params["chat_id"] in chat_ids
    )


@pytest.mark.parametrize(
    ("transport", "database_url", "residents", "rate"),
    [
        # A raised limit keeps this quick (about 100/s here); the pacer's limit where it binds is tested
        # above on a virtual clock, and at the real 25/s by benchmarks/push.py.
        ("aiogram", "sqlite", 5000, 250.0),
        pytest.param("ptb", "postgres", 5000, 250.0, marks=pytest.mark.postgres),
    ],
    indirect=["database_url"],
)
async def test_a_push_reaches_every_resident_once_within_the_rate_through_errors_and_a_restart(
    transport: str, residents: int, rate: float, fake: FakeTelegram, db: Database
) -> None:
    project = await create_project(db)
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    chat_ids = await add_residents(db, fake, project, residents)
    everyone = set(chat_ids)
    blocked = set(chat_ids[7::100])  # 1% of the residents blocked the bot since they scanned
    for chat_id in blocked:
        fake.block(chat_id)
    bot = StaffBot(transport, fake, db, fast_settings(rate=rate))
    await bot.start()
    try:
        worker = fake.user(row.telegram_id)
        offer = (await worker.send("/push"))[-1]
        assert f"已扫码并同意的居民 {residents} 人" in offer.text
        fake.fail_next("sendMessage", 502, count=3)  # Telegram has a bad moment
        began = time.monotonic()
        await worker.click(f"发给全部 {residents} 人")
        assert texts.PUSH_STARTED.format(n=residents) in [m.text for m in worker.messages]

        await wait_until(lambda: delivered(fake, everyone) >= residents // 4, 120, "a quarter sent")
        fake.fail_next("sendMessage", 429, count=4, retry_after=1)
        await wait_until(lambda: delivered(fake, everyone) >= residents // 2, 120, "half sent")
        await bot.restart()  # the bot process goes down and comes back, campaign half done
        await wait_until(lambda: campaign_done(db), 180, "campaign finished")
        await wait_until(
            lambda: "推送完成" in fake.chat_messages(worker.user_id)[-1].text, 10, "final status"
        )
    finally:
        await bot.stop()
    took = time.monotonic() - began

    per_chat = Counter(c.params["chat_id"] for c in fake.calls_of("sendMessage") if c.status == 200)
    assert all(per_chat[chat_id] == 1 for chat_id in everyone - blocked), "someone got none or two"
    assert not any(per_chat[chat_id] for chat_id in blocked)
    for chat_id in blocked:  # a 403 is never retried (a 429 or 5xx before it may have been)
        tries = [c.status for c in fake.calls_of("sendMessage") if c.params["chat_id"] == chat_id]
        assert tries[-1] == 403 and tries.count(403) == 1, tries
    assert all(len(fake.chat_messages(chat_id)) == 1 for chat_id in list(everyone - blocked)[:200])

    # Every call Telegram saw, retries and status edits included, stayed within the rate.
    busiest = most_in_any_window([c.time for c in sends(fake)])
    assert busiest <= rate
    print(
        f"{residents} residents in {took:.1f}s: {residents / took:.0f}/s, "
        f"busiest second {busiest}, limit {rate:.0f}/s"
    )
    first_flood = min(c.time for c in fake.calls if c.status == 429)
    # Calls already under way when the 429 came may still land; on a busy machine that takes a while.
    during = [
        round(c.time - first_flood, 3) for c in sends(fake) if first_flood + 0.5 < c.time < first_flood + 0.95
    ]
    assert not during, f"calls landed during the flood wait at {during} s"

    status = fake.chat_messages(worker.user_id)[-1].text
    assert (
        f"已发送 {residents - len(blocked)}/{residents}" in status
        and f"已屏蔽机器人 {len(blocked)} 人" in status
    )
    async with db.reading() as session:
        counted = await session.execute(
            select(CampaignRecipient.state, func.count()).group_by(CampaignRecipient.state)
        )
        states = {state: n for state, n in counted.all()}
        marked = set(
            (await session.scalars(select(Person.telegram_id).where(Person.blocked_bot.is_(True)))).all()
        )
    assert states == {RecipientState.SENT: residents - len(blocked), RecipientState.BLOCKED: len(blocked)}
    assert marked == blocked


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_two_processes_running_one_campaign_never_send_anyone_twice(
    database_url: str, fake: FakeTelegram, db: Database
) -> None:
    """The outreach lease keeps one sender at a time; this is the moment it does not (a sender stalled past
    its lease while another took over): both claim recipients from one campaign at once."""
    project = await create_project(db)
    chat_ids = await add_residents(db, fake, project, 600)
    pushed = await push_to_grid(db, project)
    # Two processes: each its own connection pool, its own transport, its own pacer.
    settings = fast_settings(rate=1000.0, window_seconds=0.05)
    runs, transports, databases = [], [], []
    for name in ("aiogram", "ptb"):
        database = Database(database_url)
        engine = DialogEngine(database, bot_username=fake.bot_username, link_secret=LINK_SECRET)
        transport = make_transport(name, engine, bot_settings(fake, database))
        runs.append(CampaignRun(database, Courier(transport, settings), pushed.id))
        transports.append(transport)
        databases.append(database)
    try:
        await asyncio.wait_for(asyncio.gather(*(run.run() for run in runs)), 120)
    finally:
        for transport in transports:
            await transport.close()
        for database in databases:
            await database.dispose()

    per_chat = Counter(c.params["chat_id"] for c in fake.calls_of("sendMessage") if c.status == 200)
    twice = [chat for chat in chat_ids if per_chat[chat] > 1]
    assert not twice, f"{len(twice)} residents got the invitation twice"
    assert all(per_chat[chat] == 1 for chat in chat_ids)
    async with db.reading() as session:
        states = Counter((await session.scalars(select(CampaignRecipient.state))).all())
    assert states == {RecipientState.SENT: len(chat_ids)}


@ONE_EACH_CROSSED
async def test_a_crash_mid_call_never_sends_anyone_a_second_message(staff_bot_factory: MakeStaffBot) -> None:
    bot = await staff_bot_factory(fast_settings(lease_seconds=0.5))
    db, fake = bot.db, bot.fake
    project = await create_project(db)
    chat_ids = await add_residents(db, fake, project, 300)
    fake.set_delay("sendMessage", 0.3)  # calls hang long enough to be cut off
    pushed = await push_to_grid(db, project)
    await wait_until(lambda: len(fake.calls_of("sendMessage")) >= 10, 30, "some calls made")
    await bot.crash_outreach()
    fake.set_delay("sendMessage", 0)
    await bot.start_outreach()
    await wait_until(lambda: campaign_done(db), 60, "campaign finished")

    per_chat = Counter(c.params["chat_id"] for c in fake.calls_of("sendMessage"))
    assert max(per_chat.values()) == 1
    async with db.reading() as session:
        rows = (await session.execute(select(CampaignRecipient.chat_id, CampaignRecipient.state))).all()
    unknown = {chat for chat, state in rows if state == RecipientState.UNKNOWN}
    sent = {chat for chat, state in rows if state == RecipientState.SENT}
    assert unknown and sent and unknown | sent == set(chat_ids)
    assert all(per_chat[chat] == 1 for chat in sent)  # whoever was not cut off got exactly one
    assert (await campaign(db, pushed.id)).status == "done"


@ONE_EACH
async def test_quiet_hours_hold_pushes_and_notices_until_morning(staff_bot_factory: MakeStaffBot) -> None:
    clock = ShiftedClock(shanghai(22, 30))
    quiet = QuietHours.parse("21:00-08:00", "Asia/Shanghai")
    bot = await staff_bot_factory(fast_settings(quiet=quiet), clock)
    db, fake = bot.db, bot.fake
    project = await create_project(db)
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    chat_ids = await add_residents(db, fake, project, 5)
    writer = fake.user()  # a resident whose grievance gets an answer from the assessors
    await writer.send(project.start("G01"))
    await writer.click("同意")
    for button in ("附近居民", "2", "不支持"):
        await writer.click(button)
    await writer.send("晚上施工太吵")
    async with db.transaction() as session:
        answer = (await session.scalars(select(Answer).where(Answer.question_code == "reasons"))).one()
        note = "已转交区住建局，限夜间十点前停工"
        notice = await outreach.queue_grievance_notice(session, answer.id, "forwarded", note=note)
    assert notice is not None

    worker = fake.user(row.telegram_id)
    offer = (await worker.send("/push"))[-1]
    assert "21:00–08:00 夜间不发送" in offer.text
    await worker.click("发给全部 6 人")
    await worker.wait_for(lambda: "夜间暂停，08:00 以后继续" in worker.last.text)
    await asyncio.sleep(0.5)
    assert all(fake.chat_messages(chat) == [] for chat in chat_ids)
    assert "区住建局" not in writer.last.text

    clock.wall = shanghai(8, 1)
    await wait_until(lambda: campaign_done(db), 30, "campaign finished")
    await writer.wait_for(lambda: any("区住建局" in m.text for m in writer.messages))
    await worker.wait_for(lambda: "已发送 6/6" in worker.last.text and "推送完成" in worker.last.text)
    assert all(len(fake.chat_messages(chat)) == 1 for chat in chat_ids)
    assert texts.PUSH_INVITE.format(title="测试工程意见调查") == fake.chat_messages(chat_ids[0])[0].text
    told = next(m.text for m in writer.messages if "区住建局" in m.text)
    assert (
        "测试工程意见调查" in told
        and texts.GRIEVANCE_STATUS["forwarded"] in told
        and "限夜间十点前停工" in told
    )

    async def notice_status() -> str:
        async with db.reading() as session:
            row = await session.get(Notification, notice.id)
            return row.status if row else ""

    await wait_until(lambda: notice_status(), 10, "notice recorded")
    await wait_until(lambda: _is(notice_status(), "sent"), 10, "notice sent")


@ONE_EACH_CROSSED
async def test_residents_silent_for_days_get_one_reminder_and_may_turn_them_off(
    staff_bot_factory: MakeStaffBot,
) -> None:
    settings = fast_settings(remind_after=timedelta(days=3), remind_check_seconds=0.1)
    bot = await staff_bot_factory(settings)
    db, fake = bot.db, bot.fake
    project = await create_project(db)
    silent = await add_residents(db, fake, project, 2, first_id=600_000, silent_for=timedelta(days=4))
    recent = await add_residents(db, fake, project, 1, first_id=700_000, silent_for=timedelta(days=1))
    done = await add_residents(
        db, fake, project, 1, first_id=800_000, status="submitted", silent_for=timedelta(days=4)
    )
    resident = fake.user(silent[0])
    await resident.wait_for(lambda: len(resident.messages) == 1)
    assert resident.last.text == texts.PUSH_REMINDER.format(title="测试工程意见调查")
    click = await resident.click(texts.BUTTON_OPT_OUT)
    assert click.answer_text == texts.OPTED_OUT_MARK and resident.last.text == texts.OPTED_OUT
    await asyncio.sleep(0.5)  # several more reminder checks
    assert len(fake.chat_messages(silent[1])) == 1 and len(resident.messages) == 2
    assert all(fake.chat_messages(chat) == [] for chat in recent + done)
    async with db.reading() as session:
        person = (await session.scalars(select(Person).where(Person.telegram_id == silent[0]))).one()
        assert person.push_opt_out
        assert await outreach.audience_size(session, project.id, [project.grid_ids["G01"]], False) == 3


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected
