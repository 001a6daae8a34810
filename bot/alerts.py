"""Urgent alerts ("网格吹哨"): send each queued alert to the grid's workers and the assessors on duty,
and to the admins when nobody acknowledges it in time or someone escalates it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot import callbacks as cb
from bot import texts
from bot.messages import Button, Reply
from bot.push import Courier
from storage import alerting, outreach
from storage.alerting import ADMIN, AlertView, Copy, Recipient
from storage.database import Database
from storage.models import Alert, Person, RecipientState

log = logging.getLogger(__name__)
ALERT_TEXT_LIMIT = 3500  # characters of the resident's (redacted) words shown; Telegram allows 4096


def alert_text(alert: AlertView, zone: ZoneInfo) -> str:
    signals = "、".join(texts.SIGNAL_WORDS.get(code, code) for code in alert.signals)
    when = datetime.fromisoformat(alert.created_at_iso).astimezone(zone)
    words = alert.redacted
    if len(words) > ALERT_TEXT_LIMIT:
        words = words[:ALERT_TEXT_LIMIT] + "…"
    return texts.ALERT.format(
        signals=signals,
        title=alert.project_title,
        grid=alert.grid_name or texts.ALERT_NO_GRID,
        time=f"{when.month}月{when.day}日 {when:%H:%M}",
        text=words,
    )


def alert_buttons(alert_id: int, audience: str) -> tuple[tuple[Button, ...], ...]:
    acknowledge = Button(texts.BUTTON_ACK, cb.encode(cb.ALERT, alert_id, "ack"))
    if audience == ADMIN:  # admins are where escalation ends
        return ((acknowledge,),)
    return ((acknowledge, Button(texts.BUTTON_ESCALATE, cb.encode(cb.ALERT, alert_id, "esc"))),)


class AlertSender:
    """One pass over the alert queue per `tick()`; urgent, so quiet hours do not apply."""

    def __init__(self, db: Database, courier: Courier) -> None:
        self.db = db
        self.courier = courier
        self.settings = courier.settings
        self._next_unrouted_check = 0.0

    async def tick(self) -> None:
        await self._first_round()
        await self._admin_round()

    async def _first_round(self) -> None:
        async with self.db.transaction() as session:
            plans: list[tuple[AlertView, list[Recipient], list[int]]] = []
            for alert in await alerting.queued(session) + await self._unrouted_due(session):
                recipients = await alerting.first_recipients(session, alert)
                if not recipients:  # no worker for the grid and no assessor on duty: straight to the admins
                    recipients = await alerting.admins(session)
                if alert.status == alerting.UNROUTED:
                    # Retried only on someone not tried before (a worker added to the grid, an assessor on
                    # duty, a new admin), the admins when the grid's people all failed; nobody new: wait.
                    tried = await alerting.already_tried(session, alert.id)
                    recipients = [r for r in recipients if r.person_id not in tried]
                    if not recipients:
                        recipients = [r for r in await alerting.admins(session) if r.person_id not in tried]
                    if not recipients:
                        continue
                ids = await alerting.announce(session, alert.id, recipients)
                plans.append((await alerting.view(session, alert), recipients, ids))
        for view, recipients, ids in plans:
            copies = await self._send(view, recipients, ids, head="")
            async with self.db.transaction() as session:
                alert = await alerting.record_sent(session, view.id, copies)
                await _remember_blocked(session, copies)
                late = await self._already_acknowledged(session, alert, copies)
            await self._deliver_all(late)

    async def _unrouted_due(self, session: AsyncSession) -> list[Alert]:
        """Alerts nobody could receive, looked at again now and then (someone may have become able to)."""
        now = self.courier.clock.monotonic()
        if now < self._next_unrouted_check:
            return []
        self._next_unrouted_check = now + self.settings.unrouted_retry_seconds
        return await alerting.unrouted(session)

    async def _admin_round(self) -> None:
        async with self.db.transaction() as session:
            due = await alerting.due_for_admins(session, unacknowledged_for=self.settings.alert_admins_after)
            if not due:
                return
            admins = await alerting.admins(session)
            plans: list[tuple[AlertView, str, str, list[int]]] = []
            for alert, why in due:
                if why == "timeout":
                    minutes = max(1, round(self.settings.alert_admins_after.total_seconds() / 60))
                    head = texts.ALERT_TIMEOUT_HEAD.format(minutes=minutes)
                else:
                    who = await session.get(Person, alert.escalated_by_id) if alert.escalated_by_id else None
                    head = texts.ALERT_ESCALATED_HEAD.format(name=display_name(who))
                ids = await alerting.announce(session, alert.id, admins)
                plans.append((await alerting.view(session, alert), head, why, ids))
        for view, head, why, ids in plans:
            copies = await self._send(view, admins, ids, head=head)
            async with self.db.transaction() as session:
                alert = await alerting.record_admins_told(session, view.id, copies, why)
                await _remember_blocked(session, copies)
                late = await self._already_acknowledged(session, alert, copies)
            await self._deliver_all(late)

    async def _send(
        self, view: AlertView, recipients: Sequence[Recipient], ids: Sequence[int], *, head: str
    ) -> list[Copy]:
        body = head + alert_text(view, self.settings.quiet.zone)
        results = await asyncio.gather(
            *(
                self.courier.deliver(Reply.send(r.chat_id, body, alert_buttons(view.id, r.audience)))
                for r in recipients
            )
        )
        copies = []
        for recipient, delivery_id, result in zip(recipients, ids, results, strict=True):
            status = "sent" if result.state == RecipientState.SENT else result.state
            if status != "sent":
                log.warning("alert %s to chat %s: %s %s", view.id, recipient.chat_id, status, result.error)
            copies.append(Copy(delivery_id, recipient, result.message_id, status))
        return copies

    async def _already_acknowledged(
        self, session: AsyncSession, alert: Alert, copies: Sequence[Copy]
    ) -> list[Reply]:
        """Someone acknowledged while these copies were on their way: show it on them too."""
        if alert.acknowledged_at is None:
            return []
        who = await session.get(Person, alert.acknowledged_by_id) if alert.acknowledged_by_id else None
        local = alert.acknowledged_at.astimezone(self.settings.quiet.zone)
        mark = texts.ALERT_ACKED_BY.format(
            name=display_name(who), time=f"{local.month}月{local.day}日 {local:%H:%M}"
        )
        body = alert_text(await alerting.view(session, alert), self.settings.quiet.zone) + mark
        return [
            Reply.edit(c.recipient.chat_id, c.message_id, body)
            for c in copies
            if c.message_id is not None and c.recipient.person_id != alert.acknowledged_by_id
        ]

    async def _deliver_all(self, replies: Sequence[Reply]) -> None:
        if replies:
            await asyncio.gather(*(self.courier.deliver(reply) for reply in replies))


async def _remember_blocked(session: AsyncSession, copies: Sequence[Copy]) -> None:
    for copy in copies:
        if copy.status == RecipientState.BLOCKED:
            await outreach.mark_blocked(session, copy.recipient.chat_id)


def display_name(person: Person | None) -> str:
    if person is None:
        return texts.SOMEONE
    return person.display_name or texts.ROLE_WORDS.get(person.role, "") or texts.SOMEONE
