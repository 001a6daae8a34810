"""Messages the bot starts itself: push campaigns and their recipients, reminders, grievance notices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Answer,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Channel,
    Notification,
    Person,
    RecipientState,
    Setting,
    Submission,
    SubmissionStatus,
    utcnow,
)
from storage.repository import audit

INVITE, REMINDER = "invite", "reminder"
GRIEVANCE_KIND = "grievance."  # Notification.kind "grievance.<status>": the bot words the status itself
# Where a Notification goes after "queued"; the console sets "queued", the bot everything after.
NOTICE_SENDING = "sending"
FINISHED_STATES = (
    RecipientState.SENT,
    RecipientState.BLOCKED,
    RecipientState.FAILED,
    RecipientState.UNKNOWN,
)


async def mark_blocked(session: AsyncSession, chat_id: int) -> None:
    await session.execute(
        update(Person)
        .where(Person.telegram_id == chat_id)
        .values(blocked_bot=True)
        .execution_options(synchronize_session=False)
    )


# --- campaigns -----------------------------------------------------------------------------------------


def audience(project_id: int, grid_ids: Sequence[int], only_unanswered: bool) -> Select[int, int]:
    """(person id, chat id) of everyone a push reaches: residents of the grids who started the survey on
    their phone and consented, minus those who blocked the bot or asked for no more reminders."""
    started = select(Submission.person_id).where(
        Submission.project_id == project_id,
        Submission.grid_id.in_(list(grid_ids)),
        Submission.channel == Channel.TELEGRAM,
        Submission.consent_at.is_not(None),
        Submission.person_id.is_not(None),
        Submission.status != SubmissionStatus.WITHDRAWN,
    )
    if only_unanswered:
        answered = select(Submission.person_id).where(
            Submission.project_id == project_id,
            Submission.status == SubmissionStatus.SUBMITTED,
            Submission.person_id.is_not(None),
        )
        started = started.where(
            Submission.status == SubmissionStatus.IN_PROGRESS, Submission.person_id.not_in(answered)
        )
    return select(Person.id, Person.telegram_id).where(
        Person.id.in_(started), Person.blocked_bot.is_(False), Person.push_opt_out.is_(False)
    )


async def audience_size(
    session: AsyncSession, project_id: int, grid_ids: Sequence[int], only_unanswered: bool
) -> int:
    query = select(func.count()).select_from(audience(project_id, grid_ids, only_unanswered).subquery())
    return int((await session.execute(query)).scalar_one())


async def create_campaign(
    session: AsyncSession,
    *,
    project_id: int,
    grid_ids: Sequence[int],
    only_unanswered: bool,
    created_by: str,
    creator_id: int | None = None,
    status_chat_id: int | None = None,
) -> Campaign:
    """A push and its recipients, fixed now: someone who joins later is not added halfway through."""
    campaign = Campaign(
        project_id=project_id,
        kind=INVITE,
        grid_ids=sorted(grid_ids),
        only_unanswered=only_unanswered,
        created_by=created_by,
        creator_id=creator_id,
        status_chat_id=status_chat_id,
        status=CampaignStatus.RUNNING,
    )
    session.add(campaign)
    await session.flush()
    people = audience(project_id, grid_ids, only_unanswered).subquery()
    await session.execute(
        insert(CampaignRecipient).from_select(
            ["campaign_id", "person_id", "chat_id", "state", "attempts", "error"],
            select(
                literal(campaign.id),
                people.c.id,
                people.c.telegram_id,
                literal(RecipientState.PENDING.value),
                literal(0),
                literal(""),
            ),
        )
    )
    campaign.total = await _count(session, campaign.id)
    audit(
        session,
        created_by,
        "campaign.created",
        f"campaign:{campaign.id}",
        project_id=project_id,
        grid_ids=campaign.grid_ids,
        only_unanswered=only_unanswered,
        recipients=campaign.total,
    )
    await session.flush()
    return campaign


async def _count(session: AsyncSession, campaign_id: int) -> int:
    query = select(func.count()).where(CampaignRecipient.campaign_id == campaign_id)
    return int((await session.execute(query)).scalar_one())


async def running_campaigns(session: AsyncSession) -> list[Campaign]:
    query = select(Campaign).where(Campaign.status == CampaignStatus.RUNNING).order_by(Campaign.id)
    return list((await session.scalars(query)).all())


@dataclass(frozen=True, slots=True)
class Claimed:
    """A recipient now marked "sending": from here on they are never sent the campaign twice."""

    id: int
    chat_id: int
    person_id: int | None


async def claim_recipients(session: AsyncSession, campaign_id: int, limit: int) -> list[Claimed]:
    if limit <= 0:
        return []
    rows = (
        await session.execute(
            select(CampaignRecipient.id, CampaignRecipient.chat_id, CampaignRecipient.person_id)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == RecipientState.PENDING,
            )
            .order_by(CampaignRecipient.id)
            .limit(limit)
            # Two senders at once (one stalled past its lease while another took over) must never claim
            # the same recipient: on PostgreSQL each skips the rows the other is claiming. SQLite writes
            # one transaction at a time, so there the plain read is enough (and FOR UPDATE is not sent).
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    await session.execute(
        update(CampaignRecipient)
        .where(
            CampaignRecipient.id.in_([row.id for row in rows]),
            CampaignRecipient.state == RecipientState.PENDING,
        )
        .values(state=RecipientState.SENDING)
        .execution_options(synchronize_session=False)
    )
    return [Claimed(row.id, row.chat_id, row.person_id) for row in rows]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed recipient ended: a RecipientState, or PENDING when no call was made after all."""

    recipient_id: int
    state: str
    attempts: int = 0
    error: str = ""
    chat_id: int = 0


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Store what happened to claimed recipients, and remember who blocked the bot."""
    now = utcnow()
    plain: dict[str, list[int]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.error or outcome.attempts > 1:
            await session.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.id == outcome.recipient_id)
                .values(
                    state=outcome.state,
                    attempts=outcome.attempts,
                    error=outcome.error[:200],
                    sent_at=now if outcome.state == RecipientState.SENT else None,
                )
                .execution_options(synchronize_session=False)
            )
        else:
            plain[outcome.state].append(outcome.recipient_id)
    for state, ids in plain.items():
        for start in range(0, len(ids), 500):
            await session.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.id.in_(ids[start : start + 500]))
                .values(
                    state=state,
                    attempts=0 if state == RecipientState.PENDING else 1,
                    sent_at=now if state == RecipientState.SENT else None,
                )
                .execution_options(synchronize_session=False)
            )
    blocked = [o.chat_id for o in outcomes if o.state == RecipientState.BLOCKED and o.chat_id]
    if blocked:
        await session.execute(
            update(Person)
            .where(Person.telegram_id.in_(blocked))
            .values(blocked_bot=True)
            .execution_options(synchronize_session=False)
        )


async def campaign_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    query = (
        select(CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.state)
    )
    return {state: int(n) for state, n in (await session.execute(query)).all()}


async def finish_campaign(session: AsyncSession, campaign: Campaign, counts: dict[str, int]) -> None:
    campaign.status = CampaignStatus.DONE
    campaign.finished_at = utcnow()
    audit(session, "system", "campaign.finished", f"campaign:{campaign.id}", **counts)
    await session.flush()


async def interrupted_to_unknown(session: AsyncSession) -> int:
    """After taking over from a runner that died: whoever it left "sending" may have got the message,
    so they become "unknown" and are not sent it again (at most once). Same for grievance notices."""
    running = select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING)
    result = await session.execute(
        update(CampaignRecipient)
        .where(
            CampaignRecipient.campaign_id.in_(running),
            CampaignRecipient.state == RecipientState.SENDING,
        )
        .values(state=RecipientState.UNKNOWN, error="interrupted during the call")
        .execution_options(synchronize_session=False)
    )
    notices = await session.execute(
        update(Notification)
        .where(Notification.status == NOTICE_SENDING)
        .values(status=RecipientState.UNKNOWN)
        .execution_options(synchronize_session=False)
    )
    changed = int(getattr(result, "rowcount", 0) or 0) + int(getattr(notices, "rowcount", 0) or 0)
    if changed:
        audit(session, "system", "campaign.interrupted", "", unknown=changed)
    return changed


# --- the lease: one process at a time sends campaigns, so the overall rate holds across processes ------


async def take_lease(session: AsyncSession, name: str, owner: str, *, ttl: timedelta) -> bool:
    """Hold (or renew) the lease `name` for `ttl`; False while another owner holds a live one."""
    now = utcnow()
    value = f"{owner} {(now + ttl).isoformat()}"
    row = await session.get(Setting, name, with_for_update=True)
    if row is None:
        session.add(Setting(key=name, value=value))
        await session.flush()
        return True
    holder, _, until = row.value.partition(" ")
    if holder != owner and until and datetime.fromisoformat(until) > now:
        return False
    row.value = value
    await session.flush()
    return True


async def release_lease(session: AsyncSession, name: str, owner: str) -> None:
    row = await session.get(Setting, name, with_for_update=True)
    if row is not None and row.value.partition(" ")[0] == owner:
        row.value = f"{owner} {utcnow().isoformat()}"
        await session.flush()


async def lease_holder(session: AsyncSession, name: str) -> str:
    """The owner of a live lease, or "" when nobody holds it."""
    row = await session.get(Setting, name)
    if row is None:
        return ""
    holder, _, until = row.value.partition(" ")
    return holder if until and datetime.fromisoformat(until) > utcnow() else ""


# --- reminders -----------------------------------------------------------------------------------------


async def plan_reminders(session: AsyncSession, *, silent_for: timedelta) -> list[Campaign]:
    """One reminder campaign per project for residents silent in an unfinished survey for `silent_for`.

    Each unfinished submission is reminded once: a resident is never nagged twice about the same survey.
    """
    reminded = (
        select(CampaignRecipient.id)
        .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
        .where(
            Campaign.kind == REMINDER,
            Campaign.project_id == Submission.project_id,
            CampaignRecipient.person_id == Person.id,
        )
    )
    due = (
        select(Submission.project_id, Submission.grid_id, Person.id, Person.telegram_id)
        .join(Person, Person.id == Submission.person_id)
        .where(
            Submission.status == SubmissionStatus.IN_PROGRESS,
            Submission.channel == Channel.TELEGRAM,
            Submission.consent_at.is_not(None),
            Submission.updated_at < utcnow() - silent_for,
            Person.blocked_bot.is_(False),
            Person.push_opt_out.is_(False),
            ~exists(reminded),
        )
        .order_by(Submission.project_id, Person.id)
    )
    by_project: dict[int, dict[int, tuple[int, int | None]]] = defaultdict(dict)
    for project_id, grid_id, person_id, chat_id in (await session.execute(due)).all():
        by_project[project_id][chat_id] = (person_id, grid_id)
    campaigns = []
    for project_id, people in by_project.items():
        grids = sorted({grid for _, grid in people.values() if grid is not None})
        campaign = Campaign(
            project_id=project_id,
            kind=REMINDER,
            grid_ids=grids,
            created_by="system",
            status=CampaignStatus.RUNNING,
            total=len(people),
        )
        session.add(campaign)
        await session.flush()
        await session.execute(
            insert(CampaignRecipient),
            [
                {"campaign_id": campaign.id, "person_id": person_id, "chat_id": chat_id, "state": "pending"}
                for chat_id, (person_id, _) in people.items()
            ],
        )
        target = f"campaign:{campaign.id}"
        audit(session, "system", "campaign.created", target, kind=REMINDER, recipients=len(people))
        campaigns.append(campaign)
    await session.flush()
    return campaigns


# --- closing the loop: grievance notices ---------------------------------------------------------------


async def queue_grievance_notice(
    session: AsyncSession,
    answer_id: int,
    status: str,
    *,
    note: str = "",
    risk_item_id: int | None = None,
    actor: str = "console",
) -> Notification | None:
    """Tell the resident who wrote answer `answer_id` that its status is now `status`, with `note` in
    the assessor's plain words. The bot words the status and sends it outside quiet hours.

    None when there is nobody to tell: the resident withdrew, or the answer was given at the door and
    the household has not confirmed it from a phone.
    """
    answer = await session.get(Answer, answer_id)
    submission = await session.get(Submission, answer.submission_id) if answer is not None else None
    if submission is None or submission.person_id is None:
        return None
    notice = Notification(
        person_id=submission.person_id,
        project_id=submission.project_id,
        kind=(GRIEVANCE_KIND + status)[:32],
        text=note,
        risk_item_id=risk_item_id,
        status="queued",
    )
    session.add(notice)
    await session.flush()
    audit(session, actor, "grievance.notice_queued", submission.receipt, status=status, notice=notice.id)
    return notice


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    id: int
    chat_id: int
    project_id: int
    kind: str
    text: str


async def claim_notices(session: AsyncSession, limit: int) -> list[ClaimedNotice]:
    rows = (
        await session.execute(
            select(Notification, Person.telegram_id)
            .join(Person, Person.id == Notification.person_id)
            .where(Notification.status == "queued")
            .order_by(Notification.id)
            .limit(limit)
            .with_for_update(of=Notification, skip_locked=True)  # as in claim_recipients
        )
    ).all()
    claimed = []
    for notice, chat_id in rows:
        notice.status = NOTICE_SENDING
        claimed.append(ClaimedNotice(notice.id, chat_id, notice.project_id, notice.kind, notice.text))
    await session.flush()
    return claimed


async def record_notice(session: AsyncSession, notice_id: int, state: str) -> None:
    """ "pending" puts a notice back in the queue (no call was made); anything else is final."""
    status = "queued" if state == RecipientState.PENDING else state
    await session.execute(
        update(Notification)
        .where(Notification.id == notice_id)
        .values(status=status, sent_at=utcnow() if state == RecipientState.SENT else None)
        .execution_options(synchronize_session=False)
    )
