"""`minyi invite`: a one-time, expiring link that makes whoever opens it a grid worker, assessor or admin."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from bot.links import deep_link
from minyi.commands import CommandError
from minyi.commands.common import database, grids_or_fail, project_or_fail, run, settings
from storage import repository as repo
from storage import staff as staffing

ROLES = ("gridworker", "assessor", "admin")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invite",
        help="print a one-time invitation link for a grid worker, assessor or admin",
        description="The person opens the link in Telegram (or sends the code to the bot) and gets the "
        "role; the link works once and expires.",
    )
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--project", metavar="CODE", help="the project of the --grid codes")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="CODE", help="a grid the worker looks after (repeat)"
    )
    parser.add_argument("--name", default="", help="how colleagues will see them, e.g. 王网格")
    parser.add_argument("--hours", type=int, default=72, help="the link expires after this many hours (72)")
    parser.add_argument(
        "--bot-username", default="", help="the bot's @username (default: MINYI_BOT_USERNAME)"
    )
    parser.set_defaults(func=invite_command)


def invite_command(args: argparse.Namespace) -> int:
    config = settings()
    if args.role == "gridworker" and not (args.project and args.grid):
        raise CommandError("a grid worker needs --project and at least one --grid")
    if args.role != "gridworker" and args.grid:
        raise CommandError(f"--grid is for grid workers; an {args.role} sees every grid")
    if not 1 <= args.hours <= 24 * 30:
        raise CommandError("--hours must be between 1 and 720")
    if len(args.name) > 100:
        raise CommandError("--name is at most 100 characters")

    async def make() -> tuple[str, list[str]]:
        async with database(config) as db, db.transaction() as session:
            grid_ids, names = [], []
            if args.grid:
                project = await project_or_fail(session, args.project)
                for grid in await grids_or_fail(session, project, args.grid):
                    grid_ids.append(grid.id)
                    names.append(f"{project.code}-{grid.code} {grid.name}")
            code = await staffing.create_invite(
                session,
                role=args.role,
                grid_ids=grid_ids,
                display_name=args.name.strip(),
                valid_for=timedelta(hours=args.hours),
                created_by="cli",
            )
            repo.audit(session, "cli", "invite.created", args.role, grid_ids=grid_ids, hours=args.hours)
            return code, names

    code, names = run(make())
    username = (args.bot_username or config.bot_username).lstrip("@")
    print(f"invitation: {args.role}{' ' + args.name if args.name else ''}, valid {args.hours} hours, once")
    for name in names:
        print(f"grid: {name}")
    print(f"code (send it to the bot if the link loses it): {code}")
    print(deep_link(username, code))
    return 0
