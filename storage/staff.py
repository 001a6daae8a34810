"""Staff in the bot: one-time invitations, roles, the grids a worker looks after, and per-grid progress."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Answer,
    Channel,
    Grid,
    GridWorker,
    Invite,
    Person,
    Role,
    Submission,
    SubmissionStatus,
    utcnow,
)

INVITE_PREFIX = "inv_"
# 128 random bits: guessing a live code is out of reach, and the code still fits a deep link easily.
_INVITE_BYTES = 16
STAFF_ROLES = (Role.GRIDWORKER, Role.ASSESSOR, Role.ADMIN)


class InviteRefused(Exception):
    """An invitation code that cannot be used; `reason` is "unknown", "used" or "expired"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def looks_like_invite(text: str) -> bool:
    return text.startswith(INVITE_PREFIX) and 10 < len(text) <= 64


async def create_invite(
    session: AsyncSession,
    *,
    role: str,
    grid_ids: Sequence[int] = (),
    display_name: str = "",
    valid_for: timedelta,
    created_by: str,
) -> str:
    """Store an invitation and return its code; only the code's hash is kept."""
    if role not in STAFF_ROLES:
        raise ValueError(f"cannot invite to role {role!r}")
    code = INVITE_PREFIX + secrets.token_urlsafe(_INVITE_BYTES)
    session.add(
        Invite(
            code_hash=_hash(code),
            role=role,
            display_name=display_name,
            grid_ids=list(grid_ids),
            expires_at=utcnow() + valid_for,
            created_by=created_by,
        )
    )
    await session.flush()
    return code


async def usable_invite(session: AsyncSession, code: str) -> Invite:
    """The invitation behind `code`; InviteRefused when there is none, or it was used or has expired."""
    invite = (await session.scalars(select(Invite).where(Invite.code_hash == _hash(code)))).first()
    if invite is None:
        raise InviteRefused("unknown")
    if invite.used_at is not None:
        raise InviteRefused("used")
    if invite.expires_at <= utcnow():
        raise InviteRefused("expired")
    return invite


async def accept_invite(session: AsyncSession, invite: Invite, person: Person) -> None:
    """Give `person` the invitation's role and grids, once: a second use of the code is refused."""
    # Conditional update: of two people opening the same code at once, only one gets it.
    claimed = await session.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=utcnow(), used_by_id=person.id)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise InviteRefused("used")
    person.role = invite.role
    if invite.display_name:
        person.display_name = invite.display_name
    if invite.role == Role.ASSESSOR:
        person.on_duty = True  # new assessors start on duty; /duty off stops the alerts
    existing = set(await grid_ids_of_worker(session, person.id))
    for grid_id in invite.grid_ids:
        if grid_id not in existing:
            session.add(GridWorker(grid_id=grid_id, person_id=person.id))
    await session.flush()


async def grid_ids_of_worker(session: AsyncSession, person_id: int) -> list[int]:
    rows = await session.scalars(select(GridWorker.grid_id).where(GridWorker.person_id == person_id))
    return list(rows)


async def grids_of_worker(session: AsyncSession, person_id: int) -> list[Grid]:
    query = (
        select(Grid)
        .join(GridWorker, GridWorker.grid_id == Grid.id)
        .where(GridWorker.person_id == person_id)
        .order_by(Grid.project_id, Grid.code)
    )
    return list((await session.scalars(query)).all())


async def all_grids(session: AsyncSession) -> list[Grid]:
    return list((await session.scalars(select(Grid).order_by(Grid.project_id, Grid.code))).all())


async def workers_of_grid(session: AsyncSession, grid_id: int) -> list[Person]:
    query = (
        select(Person)
        .join(GridWorker, GridWorker.person_id == Person.id)
        .where(GridWorker.grid_id == grid_id, Person.role == Role.GRIDWORKER)
        .order_by(Person.id)
    )
    return list((await session.scalars(query)).all())


async def people_with_role(session: AsyncSession, role: str, *, on_duty_only: bool = False) -> list[Person]:
    query = select(Person).where(Person.role == role)
    if on_duty_only:
        query = query.where(Person.on_duty.is_(True))
    return list((await session.scalars(query.order_by(Person.id))).all())


# --- progress ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridProgress:
    """Where one grid stands: households, residents who started, submissions, proxy visits."""

    grid_id: int
    code: str
    name: str
    households: int
    started: int  # past consent, on their own phone or at the door
    submitted: int
    visits: int  # submitted at the door by a worker (代填)

    @property
    def rate(self) -> float:
        """Submissions per household (0 when the household count is unknown)."""
        return self.submitted / self.households if self.households else 0.0


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A resident who started and has not submitted: someone to visit or remind."""

    receipt: str
    answered: int
    last_activity: datetime
    channel: str


async def grid_progress(session: AsyncSession, grid_ids: Sequence[int]) -> list[GridProgress]:
    if not grid_ids:
        return []
    submitted = Submission.status == SubmissionStatus.SUBMITTED
    query = (
        select(
            Grid.id,
            Grid.code,
            Grid.name,
            Grid.households,
            func.count(Submission.id),
            func.coalesce(func.sum(case((submitted, 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((and_(submitted, Submission.channel == Channel.VISIT), 1), else_=0)), 0
            ),
        )
        .select_from(Grid)
        .outerjoin(
            Submission,
            and_(
                Submission.grid_id == Grid.id,
                Submission.current_step != "consent",
                Submission.status != SubmissionStatus.WITHDRAWN,
            ),
        )
        .where(Grid.id.in_(list(grid_ids)))
        .group_by(Grid.id, Grid.code, Grid.name, Grid.households)
        .order_by(Grid.project_id, Grid.code)
    )
    return [
        GridProgress(grid_id, code, name, households, int(started), int(done), int(visits))
        for grid_id, code, name, households, started, done, visits in (await session.execute(query)).all()
    ]


async def unfinished_in_grid(session: AsyncSession, grid_id: int, limit: int = 30) -> list[Unfinished]:
    """Residents of the grid who started but have not submitted, longest silent first."""
    query = (
        select(
            Submission.receipt,
            select(func.count(Answer.id)).where(Answer.submission_id == Submission.id).scalar_subquery(),
            Submission.updated_at,
            Submission.channel,
        )
        .where(
            Submission.grid_id == grid_id,
            Submission.status == SubmissionStatus.IN_PROGRESS,
            Submission.current_step != "consent",
        )
        .order_by(Submission.updated_at)
        .limit(limit)
    )
    return [Unfinished(*row) for row in (await session.execute(query)).all()]
