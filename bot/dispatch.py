"""Everything the bot does on its own initiative, in one loop: urgent alerts, push campaigns, reminders,
grievance notices, and forgetting old update ids. One process at a time does it (a lease in the
database), so the overall rate holds however many bot processes run, and a dead process's work is taken
over when its lease runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import timedelta

from bot import texts
from bot.alerts import AlertSender
from bot.messages import Reply
from bot.outbound import Outbound
from bot.push import CampaignRun, Clock, Courier, PushSettings
from storage import housekeeping, outreach
from storage.database import Database
from storage.models import Campaign, CampaignStatus, Project, RecipientState

log = logging.getLogger(__name__)
LEASE = "outreach.lease"


def notice_text(kind: str, note: str, title: str) -> str:
    if not kind.startswith(outreach.GRIEVANCE_KIND):
        return note  # worded in full by whoever queued it
    status = kind.removeprefix(outreach.GRIEVANCE_KIND)
    return texts.GRIEVANCE_NOTICE.format(
        title=title,
        status=texts.GRIEVANCE_STATUS.get(status, texts.GRIEVANCE_STATUS_OTHER),
        note=texts.GRIEVANCE_NOTE.format(note=note.strip()) if note.strip() else "",
    )


class Dispatch:
    """Run with `run()` until `stop()`; `stop()` finishes calls in progress and puts back the rest.

    Cancelling `run()` instead is what a crash looks like: nothing more is written, and whoever was being
    sent to stays "sending" until the next holder of the lease marks them "unknown".
    """

    def __init__(
        self,
        db: Database,
        outbound: Outbound,
        settings: PushSettings,
        *,
        clock: Clock | None = None,
        owner: str = "",
    ) -> None:
        self.db = db
        self.settings = settings
        self.courier = Courier(outbound, settings, clock)
        self.clock = self.courier.clock
        self.alerts = AlertSender(db, self.courier)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.holding = False
        self._runs: dict[int, tuple[CampaignRun, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._next_reminder_check = 0.0
        self._next_housekeeping = 0.0

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for new work now instead of at the next poll (after a worker starts a push, say)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a database hiccup must not end outreach for the life of the process
                    log.exception("outreach pass failed; trying again")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
        except asyncio.CancelledError:
            for _, task in self._runs.values():
                task.cancel()
            await asyncio.gather(*(task for _, task in self._runs.values()), return_exceptions=True)
            raise
        await self._stop_runs()
        if self.holding:
            async with self.db.transaction() as session:
                await outreach.release_lease(session, LEASE, self.owner)
            self.holding = False

    async def tick(self) -> None:
        """One pass: renew the lease, then do whatever is due."""
        if not await self._hold_lease():
            return
        await self.alerts.tick()
        await self._start_campaigns()
        await self._send_notices()
        await self._plan_reminders()
        await self._housekeeping()

    async def _hold_lease(self) -> bool:
        ttl = timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as session:
            held = await outreach.take_lease(session, LEASE, self.owner, ttl=ttl)
            if held and not self.holding:
                # Taking over: a previous holder may have died mid-call, or sent until a moment ago.
                swept = await outreach.interrupted_to_unknown(session)
                if swept:
                    log.warning("%s recipients were interrupted mid-call; not sending to them again", swept)
                self.courier.pacer.hold(1.0)
        if self.holding and not held:
            log.warning("lost the outreach lease to another process; stopping campaigns here")
            await self._stop_runs()
        self.holding = held
        return held

    async def _start_campaigns(self) -> None:
        for campaign_id, (_, task) in list(self._runs.items()):
            if task.done():
                del self._runs[campaign_id]
                if not task.cancelled() and task.exception() is not None:
                    log.error("campaign %s stopped", campaign_id, exc_info=task.exception())
        async with self.db.reading() as session:
            running = await outreach.running_campaigns(session)
        for campaign in running:
            if campaign.id not in self._runs:
                run = CampaignRun(self.db, self.courier, campaign.id)
                self._runs[campaign.id] = (run, asyncio.create_task(run.run()))

    async def _stop_runs(self) -> None:
        for run, _ in self._runs.values():
            run.stop()
        if self._runs:
            await asyncio.gather(*(task for _, task in self._runs.values()), return_exceptions=True)
        self._runs.clear()

    async def _send_notices(self) -> None:
        if self.settings.quiet.active(self.clock.now()):
            return
        async with self.db.transaction() as session:
            claimed = await outreach.claim_notices(session, self.settings.window)
            titles = {}
            for notice in claimed:
                if notice.project_id not in titles:
                    project = await session.get(Project, notice.project_id)
                    titles[notice.project_id] = project.title if project else ""
        if not claimed:
            return
        tasks = [
            self.courier.start(
                Reply.send(notice.chat_id, notice_text(notice.kind, notice.text, titles[notice.project_id]))
            )
            for notice in claimed
        ]
        await asyncio.wait(tasks)
        async with self.db.transaction() as session:
            for notice, task in zip(claimed, tasks, strict=True):
                state = task.result().state
                await outreach.record_notice(session, notice.id, state)
                if state == RecipientState.BLOCKED:
                    await outreach.mark_blocked(session, notice.chat_id)

    async def _plan_reminders(self) -> None:
        if self.settings.remind_after is None or self.clock.monotonic() < self._next_reminder_check:
            return
        self._next_reminder_check = self.clock.monotonic() + self.settings.remind_check_seconds
        async with self.db.transaction() as session:
            planned = await outreach.plan_reminders(session, silent_for=self.settings.remind_after)
        if planned:
            log.info("planned %s reminder campaign(s)", len(planned))
            await self._start_campaigns()

    async def _housekeeping(self) -> None:
        if self.clock.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = self.clock.monotonic() + self.settings.housekeeping_seconds
        async with self.db.transaction() as session:
            forgotten = await housekeeping.forget_old_update_ids(session)
        if forgotten:
            log.info("forgot %s update ids older than %s", forgotten, housekeeping.KEEP_UPDATE_IDS)

    async def campaign_finished(self, campaign_id: int) -> bool:
        async with self.db.reading() as session:
            campaign = await session.get(Campaign, campaign_id)
            return campaign is None or campaign.status != CampaignStatus.RUNNING
