"""Urgent alerts after they are queued: who gets them, every copy sent, acknowledgement and escalation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Alert, AlertDelivery, Grid, GridWorker, Person, Project, Role, utcnow
from storage.repository import audit

QUEUED, SENT, ACKNOWLEDGED, ESCALATED = "queued", "sent", "acknowledged", "escalated"
# Nobody could be told: no worker for the grid, no assessor on duty, no admin, or every copy failed. Such an
# alert stays on the console's dashboard and goes out as soon as someone new can receive it.
UNROUTED = "unrouted"
GRID, ASSESSOR, ADMIN = "grid", "assessor", "admin"


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: int
    chat_id: int
    audience: str  # GRID, ASSESSOR or ADMIN


@dataclass(frozen=True, slots=True)
class AlertView:
    """What an alert message shows."""

    id: int
    signals: list[str]
    redacted: str
    created_at_iso: str
    project_title: str
    grid_name: str
    status: str


@dataclass(frozen=True, slots=True)
class Copy:
    """One alert message in one chat, as sent."""

    delivery_id: int
    recipient: Recipient
    message_id: int | None
    status: str  # "sent", "blocked", "failed", "unknown"


async def queued(session: AsyncSession, limit: int = 50) -> list[Alert]:
    query = select(Alert).where(Alert.status == QUEUED).order_by(Alert.id).limit(limit)
    return list((await session.scalars(query)).all())


async def unrouted(session: AsyncSession, limit: int = 50) -> list[Alert]:
    query = select(Alert).where(Alert.status == UNROUTED).order_by(Alert.id).limit(limit)
    return list((await session.scalars(query)).all())


async def already_tried(session: AsyncSession, alert_id: int) -> set[int]:
    """The people a copy of the alert was sent to, or tried: an unrouted alert is not tried on them again."""
    query = select(AlertDelivery.person_id).where(AlertDelivery.alert_id == alert_id)
    return {person_id for person_id in (await session.scalars(query)).all() if person_id is not None}


async def view(session: AsyncSession, alert: Alert) -> AlertView:
    project = await session.get(Project, alert.project_id)
    grid = await session.get(Grid, alert.grid_id) if alert.grid_id is not None else None
    return AlertView(
        alert.id,
        list(alert.signals),
        alert.redacted,
        alert.created_at.isoformat(),
        project.title if project else "",
        grid.name if grid else "",
        alert.status,
    )


async def first_recipients(session: AsyncSession, alert: Alert) -> list[Recipient]:
    """The workers of the alert's grid (nobody outside it) and every assessor on duty."""
    people: list[Recipient] = []
    if alert.grid_id is not None:
        workers = await session.execute(
            select(Person.id, Person.telegram_id)
            .join(GridWorker, GridWorker.person_id == Person.id)
            .where(
                GridWorker.grid_id == alert.grid_id,
                Person.role == Role.GRIDWORKER,
                Person.blocked_bot.is_(False),
            )
            .order_by(Person.id)
        )
        people.extend(Recipient(pid, chat, GRID) for pid, chat in workers.all())
    assessors = await session.execute(
        select(Person.id, Person.telegram_id)
        .where(Person.role == Role.ASSESSOR, Person.on_duty.is_(True), Person.blocked_bot.is_(False))
        .order_by(Person.id)
    )
    people.extend(Recipient(pid, chat, ASSESSOR) for pid, chat in assessors.all())
    return people


async def admins(session: AsyncSession) -> list[Recipient]:
    rows = await session.execute(
        select(Person.id, Person.telegram_id)
        .where(Person.role == Role.ADMIN, Person.blocked_bot.is_(False))
        .order_by(Person.id)
    )
    return [Recipient(pid, chat, ADMIN) for pid, chat in rows.all()]


async def announce(session: AsyncSession, alert_id: int, recipients: Sequence[Recipient]) -> list[int]:
    """Record the copies about to be sent, before sending them: whoever gets one may tap it at once."""
    rows = [
        AlertDelivery(
            alert_id=alert_id,
            person_id=r.person_id,
            chat_id=r.chat_id,
            audience=r.audience,
            status="sending",
        )
        for r in recipients
    ]
    session.add_all(rows)
    await session.flush()
    return [row.id for row in rows]


async def _store_copies(session: AsyncSession, copies: Sequence[Copy]) -> None:
    for copy in copies:
        await session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == copy.delivery_id)
            .values(message_id=copy.message_id, status=copy.status, sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def record_sent(session: AsyncSession, alert_id: int, copies: Sequence[Copy]) -> Alert:
    """The first round went out (to the grid and the assessors, or straight to the admins)."""
    alert = await session.get(Alert, alert_id, populate_existing=True, with_for_update=True)
    assert alert is not None
    await _store_copies(session, copies)
    delivered = [c for c in copies if c.status == "sent"]
    now = utcnow()
    # An alert that waited for someone able to receive it gives them the full time to acknowledge: its
    # clock starts now that someone has it.
    if alert.sent_at is None or (alert.status == UNROUTED and delivered):
        alert.sent_at = now
    if alert.status in (QUEUED, UNROUTED):  # someone may have acted on a copy already
        alert.status = SENT if delivered else UNROUTED
    if any(c.recipient.audience == ADMIN for c in copies):
        alert.admins_notified_at = now
    audit(
        session,
        "system",
        "alert.sent" if delivered else "alert.unrouted",
        f"alert:{alert_id}",
        recipients=[f"person:{c.recipient.person_id}" for c in delivered],
        audiences=sorted({c.recipient.audience for c in delivered}),
        failed=[f"person:{c.recipient.person_id}" for c in copies if c.status != "sent"],
    )
    await session.flush()
    return alert


async def due_for_admins(session: AsyncSession, *, unacknowledged_for: timedelta) -> list[tuple[Alert, str]]:
    """Alerts the admins must now see, with why: "timeout" (nobody acknowledged in time) or
    "person:<id>" (someone asked for escalation)."""
    query = (
        select(Alert)
        .where(
            Alert.admins_notified_at.is_(None),
            or_(
                Alert.escalated_at.is_not(None),
                and_(
                    Alert.status == SENT,
                    Alert.acknowledged_at.is_(None),
                    Alert.sent_at < utcnow() - unacknowledged_for,
                ),
            ),
        )
        .order_by(Alert.id)
    )
    return [
        (alert, f"person:{alert.escalated_by_id}" if alert.escalated_at is not None else "timeout")
        for alert in (await session.scalars(query)).all()
    ]


async def record_admins_told(session: AsyncSession, alert_id: int, copies: Sequence[Copy], why: str) -> Alert:
    """`why`: "timeout" (nobody acknowledged in time) or "person:<id>" (someone escalated it)."""
    alert = await session.get(Alert, alert_id, populate_existing=True, with_for_update=True)
    assert alert is not None
    await _store_copies(session, copies)
    alert.admins_notified_at = utcnow()
    audit(
        session,
        "system" if why == "timeout" else why,
        "alert.resent_to_admins",
        f"alert:{alert_id}",
        reason=why,
        recipients=[f"person:{c.recipient.person_id}" for c in copies if c.status == "sent"],
    )
    await session.flush()
    return alert


async def copies_of(session: AsyncSession, alert_id: int) -> list[AlertDelivery]:
    query = select(AlertDelivery).where(AlertDelivery.alert_id == alert_id).order_by(AlertDelivery.id)
    return list((await session.scalars(query)).all())


async def received_by(session: AsyncSession, alert_id: int, person_id: int) -> bool:
    """Only someone the alert was sent to may acknowledge or escalate it."""
    query = select(AlertDelivery.id).where(
        AlertDelivery.alert_id == alert_id, AlertDelivery.person_id == person_id
    )
    return (await session.scalars(query)).first() is not None


async def acknowledge(session: AsyncSession, alert_id: int, person: Person) -> tuple[Alert, bool]:
    """Mark the alert acknowledged by `person`; the flag says whether they were the first."""
    result = await session.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.acknowledged_at.is_(None))
        .values(acknowledged_at=utcnow(), acknowledged_by_id=person.id, status=ACKNOWLEDGED)
        .execution_options(synchronize_session=False)
    )
    first = getattr(result, "rowcount", 0) == 1
    alert = await session.get(Alert, alert_id, populate_existing=True)
    assert alert is not None
    if first:
        audit(session, f"person:{person.id}", "alert.acknowledged", f"alert:{alert_id}", role=person.role)
    return alert, first


async def escalate(session: AsyncSession, alert_id: int, person: Person) -> tuple[Alert, bool]:
    """A person asks for the admins; the flag says whether this escalation is new."""
    alert = await session.get(Alert, alert_id, with_for_update=True)
    assert alert is not None
    if alert.escalated_at is not None:
        return alert, False
    alert.escalated_at = utcnow()
    alert.escalated_by_id = person.id
    alert.status = ESCALATED
    audit(session, f"person:{person.id}", "alert.escalated", f"alert:{alert_id}", role=person.role)
    await session.flush()
    return alert, True
