"""`minyi push`: send the survey invitation to the residents of a project's grids, with a progress bar.

The campaign is kept in the database. This command sends it itself unless a running bot already does
the sending (then it only shows progress); Ctrl-C stops cleanly and leaves the rest queued for the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, run, settings
from minyi.settings import Settings
from storage import outreach
from storage import repository as repo
from storage.database import Database
from storage.models import Campaign, CampaignStatus, RecipientState

if TYPE_CHECKING:
    from bot.push import PushSettings

BAR_WIDTH = 30
LEASE = "outreach.lease"  # bot.dispatch.LEASE; not imported, to keep the command line quick to start


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "push", help="send the survey invitation to residents who scanned a grid's code and consented"
    )
    parser.add_argument("--project", required=True, metavar="CODE")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="CODE", help="only this grid (repeat; default: all)"
    )
    parser.add_argument(
        "--only-unanswered", action="store_true", help="only residents who have not submitted yet"
    )
    parser.add_argument(
        "--detach", action="store_true", help="queue the campaign for the running bot and return at once"
    )
    parser.set_defaults(func=push_command)


def progress_bar(total: int, counts: dict[str, int]) -> str:
    sent = counts.get(RecipientState.SENT, 0)
    finished = sum(counts.get(state, 0) for state in outreach.FINISHED_STATES)
    filled = BAR_WIDTH * finished // total if total else BAR_WIDTH
    failed = counts.get(RecipientState.FAILED, 0) + counts.get(RecipientState.UNKNOWN, 0)
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{total}: {sent} sent, "
        f"{counts.get(RecipientState.BLOCKED, 0)} blocked the bot, {failed} not delivered"
    )


def push_command(args: argparse.Namespace) -> int:
    from minyi.wiring import push_settings

    config = settings()
    try:
        push = push_settings(config)
    except ValueError as error:
        raise CommandError(str(error)) from error

    async def go() -> None:
        async with database(config) as db:
            async with db.transaction() as session:
                project = await project_or_fail(session, args.project)
                grids = await repo.grids_of(session, project.id)
                if args.grid:
                    wanted = {code.upper() for code in args.grid}
                    grids = [g for g in grids if g.code.upper() in wanted]
                    unknown = wanted - {g.code.upper() for g in grids}
                    if unknown:
                        raise CommandError(f"project {project.code} has no grid {', '.join(sorted(unknown))}")
                if not grids:
                    raise CommandError(
                        f"project {project.code} has no grids; add them with `minyi grid import`"
                    )
                campaign = await outreach.create_campaign(
                    session,
                    project_id=project.id,
                    grid_ids=[g.id for g in grids],
                    only_unanswered=args.only_unanswered,
                    created_by="cli",
                )
                holder = await outreach.lease_holder(session, LEASE)
            print(f"campaign {campaign.id}: {campaign.total} residents of {', '.join(g.code for g in grids)}")
            if not campaign.total:
                return
            if args.detach:
                print("queued: the running bot sends it")
                return
            if holder:
                print("a running bot is sending it; showing its progress (Ctrl-C leaves it running)")
                await follow(db, campaign.id, None, push)
                return
            if not config.bot_token:
                raise CommandError(
                    "MINYI_BOT_TOKEN is not set: set it to send from here, or run the bot and use --detach"
                )
            await send_and_follow(config, db, campaign.id, push)

    run(go())
    return 0


async def send_and_follow(config: Settings, db: Database, campaign_id: int, push: PushSettings) -> None:
    from bot.dispatch import Dispatch
    from minyi.wiring import make_engine, make_transport

    transport = make_transport(config.transport, make_engine(config, db), config)
    dispatch = Dispatch(db, transport, push)
    sending = asyncio.create_task(dispatch.run())
    try:
        await follow(db, campaign_id, sending, push)
    finally:
        dispatch.stop()  # calls in progress finish; the rest stays queued for the bot
        await sending
        await transport.close()


async def follow(
    db: Database, campaign_id: int, sending: asyncio.Task[None] | None, push: PushSettings
) -> None:
    """Draw the progress bar until the campaign is done, sending stops, or Ctrl-C."""
    if push.quiet.active(datetime.now(UTC)):
        resume = push.quiet.resumes_at(datetime.now(UTC)).strftime("%H:%M")
        print(
            f"quiet hours: nothing is sent before {resume} ({push.quiet.zone.key}); Ctrl-C leaves it queued"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Not in the main thread: asyncio raises RuntimeError, uvloop ValueError.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    out: TextIO = sys.stdout
    shown = ""
    try:
        while True:
            async with db.reading() as session:
                campaign = await session.get(Campaign, campaign_id)
                counts = await outreach.campaign_counts(session, campaign_id)
            assert campaign is not None
            line = progress_bar(campaign.total, counts)
            done = campaign.status != CampaignStatus.RUNNING
            if line != shown:
                out.write(("\r" if out.isatty() else "") + line + ("" if out.isatty() else "\n"))
                out.flush()
                shown = line
            if done or stop.is_set() or (sending is not None and sending.done()):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)
    if out.isatty():
        out.write("\n")
    if stop.is_set() and not done:
        print("stopped; the rest of the campaign stays queued and the bot sends it")
