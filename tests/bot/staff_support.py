"""Helpers for the grid-worker tests: a bot with its outreach loop, staff and residents made in bulk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from bot.dispatch import Dispatch
from bot.engine import DialogEngine
from bot.fakeapi import FakeTelegram
from bot.push import Clock, PushSettings, QuietHours, SystemClock
from bot.tagging import ModelTags, NlpTagger, QuickTags
from bot.transports.base import Transport
from minyi.wiring import make_transport
from storage import outreach
from storage.database import Database
from storage.models import (
    Campaign,
    CampaignStatus,
    Channel,
    GridWorker,
    Person,
    Role,
    Submission,
    SubmissionStatus,
    utcnow,
)
from tests.conftest import LINK_SECRET, Project, bot_settings

NO_QUIET = QuietHours.parse("off", "Asia/Shanghai")
# Each test runs on both transports and both databases, paired to keep the suite quick; the two pairings
# between them cover all four combinations.
_POSTGRES = pytest.mark.postgres
ONE_EACH = pytest.mark.parametrize(
    ("staff_transport", "database_url"),
    [("aiogram", "sqlite"), pytest.param("ptb", "postgres", marks=_POSTGRES)],
    indirect=True,
)
ONE_EACH_CROSSED = pytest.mark.parametrize(
    ("staff_transport", "database_url"),
    [pytest.param("aiogram", "postgres", marks=_POSTGRES), ("ptb", "sqlite")],
    indirect=True,
)


def fast_settings(**changes: object) -> PushSettings:
    """Outreach that reacts in tens of milliseconds instead of seconds; no quiet hours unless asked."""
    values: dict[str, object] = {
        "rate": 200.0,
        "quiet": NO_QUIET,
        "poll_seconds": 0.05,
        "status_every": 0.3,
        "lease_seconds": 2.0,
        "backoff": 0.05,
        "remind_after": None,
        "alert_admins_after": timedelta(hours=1),
        "unrouted_retry_seconds": 0.1,
    }
    values.update(changes)
    return PushSettings(**values)  # type: ignore[arg-type]


class QuickTagger:
    """The real urgent-signal rules and redaction; no classifier model, which these tests do not need."""

    def __init__(self) -> None:
        self._rules = NlpTagger()

    def quick(self, text: str) -> QuickTags:
        return self._rules.quick(text)

    def classify(self, text: str) -> ModelTags:
        return ModelTags(())


class ShiftedClock(SystemClock):
    """The real monotonic clock, with a wall clock the test sets (quiet hours read the wall clock)."""

    def __init__(self, wall: datetime) -> None:
        self.wall = wall

    def now(self) -> datetime:
        return self.wall


@dataclass
class StaffBot:
    """A bot on one transport with its outreach loop (alerts, pushes, notices), both restartable."""

    name: str
    fake: FakeTelegram
    db: Database
    settings: PushSettings
    clock: Clock = field(default_factory=SystemClock)
    engine: DialogEngine | None = None
    transport: Transport | None = None
    polling: asyncio.Task[None] | None = None
    dispatch: Dispatch | None = None
    outreach: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.engine = DialogEngine(
            self.db,
            bot_username=self.fake.bot_username,
            link_secret=LINK_SECRET,
            tagger=QuickTagger(),
            push=self.settings,
        )
        self.transport = make_transport(self.name, self.engine, bot_settings(self.fake, self.db))
        self.polling = asyncio.create_task(self.transport.run_polling())
        await self.start_outreach()

    async def start_outreach(self) -> None:
        assert self.transport is not None
        self.dispatch = Dispatch(self.db, self.transport, self.settings, clock=self.clock)
        self.outreach = asyncio.create_task(self.dispatch.run())

    async def stop_outreach(self) -> None:
        if self.dispatch is not None and self.outreach is not None:
            self.dispatch.stop()
            await self.outreach
        self.dispatch = self.outreach = None

    async def crash_outreach(self) -> None:
        """What a killed process leaves: calls cut off mid-way, nothing written afterwards."""
        assert self.outreach is not None
        self.outreach.cancel()
        await asyncio.gather(self.outreach, return_exceptions=True)
        self.dispatch = self.outreach = None

    async def stop(self) -> None:
        await self.stop_outreach()
        if self.transport is not None and self.polling is not None:
            await self.transport.stop()
            await self.polling
            await self.transport.close()
        self.transport = self.polling = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def add_staff(
    db: Database,
    fake: FakeTelegram,
    role: str,
    *,
    grid_ids: Sequence[int] = (),
    name: str = "",
    on_duty: bool = False,
) -> Person:
    user = fake.user()
    async with db.transaction() as session:
        person = Person(
            telegram_id=user.user_id,
            role=role,
            display_name=name,
            state="",
            on_duty=on_duty,
        )
        session.add(person)
        await session.flush()
        for grid_id in grid_ids:
            session.add(GridWorker(grid_id=grid_id, person_id=person.id))
    return person


async def add_residents(
    db: Database,
    fake: FakeTelegram,
    project: Project,
    count: int,
    *,
    grid: str = "G01",
    first_id: int = 500_000,
    status: str = SubmissionStatus.IN_PROGRESS,
    silent_for: timedelta = timedelta(0),
) -> list[int]:
    """Residents who opened the grid's link and consented, made in bulk; returns their chat ids."""
    chat_ids = list(range(first_id, first_id + count))
    for chat_id in chat_ids:
        fake.user(chat_id)  # the bot can only write to chats that exist
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(Person),
            [
                {"telegram_id": c, "role": Role.RESIDENT, "display_name": "", "state": "", "created_at": now}
                for c in chat_ids
            ],
        )
        found = await session.execute(
            select(Person.telegram_id, Person.id).where(Person.telegram_id.in_(chat_ids))
        )
        ids = {telegram_id: person_id for telegram_id, person_id in found.all()}
        await session.execute(
            insert(Submission),
            [
                {
                    "receipt": f"MY-{c}",
                    "project_id": project.id,
                    "questionnaire_version_id": project.version_id,
                    "grid_id": project.grid_ids[grid],
                    "person_id": ids[c],
                    "channel": Channel.TELEGRAM,
                    "status": status,
                    "current_step": "relation",
                    "draft": {},
                    "consent_at": now - silent_for,
                    "started_at": now - silent_for,
                    "updated_at": now - silent_for,
                    "submitted_at": now if status == SubmissionStatus.SUBMITTED else None,
                }
                for c in chat_ids
            ],
        )
    return chat_ids


async def wait_until(predicate: Callable[[], object], seconds: float = 60.0, what: str = "") -> None:
    """Poll a synchronous or asynchronous condition until it holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not true after {seconds}s: {what}")
        await asyncio.sleep(0.05)


async def push_to_grid(db: Database, project: Project, grid: str = "G01") -> Campaign:
    """A campaign to everyone in the grid, as `minyi push` starts it."""
    async with db.transaction() as session:
        return await outreach.create_campaign(
            session,
            project_id=project.id,
            grid_ids=[project.grid_ids[grid]],
            only_unanswered=False,
            created_by="cli",
        )


async def campaign(db: Database, campaign_id: int | None = None) -> Campaign:
    async with db.reading() as session:
        query = select(Campaign).order_by(Campaign.id.desc())
        if campaign_id is not None:
            query = query.where(Campaign.id == campaign_id)
        row = (await session.scalars(query)).first()
    assert row is not None, "no campaign"
    return row


async def campaign_done(db: Database) -> bool:
    async with db.reading() as session:
        rows = (await session.scalars(select(Campaign))).all()
    return bool(rows) and all(row.status == CampaignStatus.DONE for row in rows)


def most_in_any_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most calls that fell into any window of `width` seconds (what Telegram's counter sees)."""
    ordered = sorted(times)
    most = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= width:
            start += 1
        most = max(most, end - start + 1)
    return most


def shanghai(hour: int, minute: int = 0) -> datetime:
    """A wall-clock moment at this local time in Asia/Shanghai (UTC+8, no daylight saving)."""
    return datetime(2026, 11, 26, hour, minute, tzinfo=UTC) - timedelta(hours=8)
