"""What every staff member can do in the bot: join by invitation, see progress, go on duty, and
acknowledge or escalate urgent alerts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot import texts
from bot.alerts import alert_buttons, alert_text, display_name
from bot.callbacks import Callback
from bot.flows import render
from bot.flows.resident import closing, stale
from bot.flows.turn import Turn
from bot.messages import Reply
from storage import alerting
from storage import repository as repo
from storage import staff as staffing
from storage.models import Person, Role, utcnow

HELP_BY_ROLE = {
    Role.GRIDWORKER: texts.HELP_GRIDWORKER,
    Role.ASSESSOR: texts.HELP_ASSESSOR,
    Role.ADMIN: texts.HELP_ADMIN,
}


def help_text(person: Person) -> str:
    return HELP_BY_ROLE.get(Role(person.role), texts.HELP)


async def accept_invite(t: Turn, person: Person | None, code: str) -> list[Reply]:
    try:
        invite = await staffing.usable_invite(t.session, code)
        person = person or await repo.ensure_person(t.session, t.incoming.user_id)
        await staffing.accept_invite(t.session, invite, person)
    except staffing.InviteRefused as refused:
        who = f"person:{person.id}" if person is not None else "telegram"
        repo.audit(t.session, who, "invite.refused", "", reason=refused.reason)
        return [Reply.send(t.chat_id, texts.INVITE_REFUSED[refused.reason])]
    repo.audit(
        t.session,
        f"person:{person.id}",
        "invite.accepted",
        f"invite:{invite.id}",
        role=invite.role,
        grid_ids=invite.grid_ids,
    )
    grids = await staffing.grids_of_worker(t.session, person.id)
    grid_names = texts.INVITE_GRIDS.format(grids="、".join(g.name for g in grids)) if grids else ""
    name = person.display_name
    text = texts.INVITE_ACCEPTED.format(
        name=f"，{name}" if name else "", role=texts.ROLE_WORDS[invite.role], grids=grid_names
    )
    return [Reply.send(t.chat_id, text)]


async def duty(t: Turn, person: Person, argument: str) -> list[Reply]:
    if person.role not in (Role.ASSESSOR, Role.ADMIN):
        return [Reply.send(t.chat_id, help_text(person))]
    choice = argument.lower()
    if choice not in ("on", "off"):
        return [Reply.send(t.chat_id, texts.DUTY_ASK.format(state=texts.DUTY_STATES[person.on_duty]))]
    person.on_duty = choice == "on"
    repo.audit(t.session, f"person:{person.id}", "duty.on" if person.on_duty else "duty.off")
    return [Reply.send(t.chat_id, texts.DUTY_ON if person.on_duty else texts.DUTY_OFF)]


async def progress(t: Turn, person: Person) -> list[Reply]:
    """A grid worker sees their grids and who has not finished; assessors and admins see every grid."""
    if person.role == Role.GRIDWORKER:
        grids = await staffing.grids_of_worker(t.session, person.id)
    else:
        grids = await staffing.all_grids(t.session)
    if not grids:
        nothing = texts.NO_GRIDS if person.role == Role.GRIDWORKER else texts.PROGRESS_NOTHING
        return [Reply.send(t.chat_id, nothing)]
    repo.audit(t.session, f"person:{person.id}", "progress.viewed", "", grids=[g.id for g in grids])
    parts = [texts.PROGRESS_HEAD]
    zone = t.engine.push.quiet.zone
    for row in await staffing.grid_progress(t.session, [g.id for g in grids]):
        rate = f"{row.rate:.0%}" if row.households else texts.PROGRESS_NO_RATE
        parts.append(
            texts.PROGRESS_GRID.format(
                name=row.name,
                households=row.households,
                started=row.started,
                submitted=row.submitted,
                visits=row.visits,
                rate=rate,
            )
        )
        if person.role != Role.GRIDWORKER:
            continue
        unfinished = await staffing.unfinished_in_grid(t.session, row.grid_id)
        if not unfinished:
            parts.append(texts.PROGRESS_NONE_UNFINISHED)
            continue
        parts.append(texts.PROGRESS_UNFINISHED_HEAD)
        for item in unfinished:
            parts.append(
                texts.PROGRESS_UNFINISHED.format(
                    receipt=item.receipt, answered=item.answered, when=_short_time(item.last_activity, zone)
                )
            )
    return [Reply.send(t.chat_id, render.clip("".join(parts), render.MESSAGE_BUDGET))]


def _short_time(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


async def on_alert_button(t: Turn, person: Person, data: Callback) -> list[Reply]:
    alert_id = int(data.part(0)) if data.part(0).isdigit() else 0
    if not alert_id or not await alerting.received_by(t.session, alert_id, person.id):
        return stale(t)  # only the people it was sent to act on an alert
    zone = t.engine.push.quiet.zone
    if data.part(1) == "esc":
        alert, new = await alerting.escalate(t.session, alert_id, person)
        if not new:
            return stale(t, texts.ALERT_ALREADY_ESCALATED)
        body = alert_text(await alerting.view(t.session, alert), zone)
        replies = []
        if t.incoming.message_id is not None:
            keep_ack = alert_buttons(alert_id, alerting.ADMIN) if alert.acknowledged_at is None else ()
            marked = body + texts.ALERT_ESCALATED_MARK
            replies.append(Reply.edit(t.chat_id, t.incoming.message_id, marked, keep_ack))
        return closing(t, replies, texts.ALERT_ESCALATED_TOAST)
    alert, first = await alerting.acknowledge(t.session, alert_id, person)
    body = alert_text(await alerting.view(t.session, alert), zone)
    acker = await t.session.get(Person, alert.acknowledged_by_id) if alert.acknowledged_by_id else None
    when = _short_time(alert.acknowledged_at or utcnow(), zone)
    if not first:
        mark = texts.ALERT_ACKED_BY.format(name=display_name(acker), time=when)
        replies = [Reply.edit(t.chat_id, t.incoming.message_id, body + mark)] if t.incoming.message_id else []
        return closing(t, replies, texts.ALERT_ALREADY_ACKED.format(name=display_name(acker)))
    replies = []
    if t.incoming.message_id is not None:
        replies.append(Reply.edit(t.chat_id, t.incoming.message_id, body + texts.ALERT_ACKED_BY_YOU))
    others = texts.ALERT_ACKED_BY.format(name=display_name(person), time=when)
    for copy in await alerting.copies_of(t.session, alert_id):
        if copy.message_id is None or copy.status != "sent":
            continue
        if copy.chat_id == t.chat_id and copy.message_id == t.incoming.message_id:
            continue
        replies.append(Reply.edit(copy.chat_id, copy.message_id, body + others))
    return closing(t, replies, texts.ALERT_ACK_TOAST)
