"""`minyi link`: print the signed deep link that brings a resident to a project's grid."""

from __future__ import annotations

import argparse
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine import LINK_SECRET_SETTING
from bot.links import LinkTarget, deep_link, make_payload
from minyi.commands import CommandError
from minyi.commands.common import database, run, settings
from storage import repository as repo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("link", help="print a deep link for a project and grid")
    parser.add_argument("--project", required=True, metavar="CODE")
    parser.add_argument("--grid", required=True, metavar="CODE")
    parser.add_argument(
        "--bot-username", default="", help="the bot's @username (default: MINYI_BOT_USERNAME)"
    )
    parser.add_argument(
        "--days", type=int, default=0, help="the link expires after this many days (0: never)"
    )
    parser.set_defaults(func=link_command)


def link_command(args: argparse.Namespace) -> int:
    config = settings()
    username = (args.bot_username or config.bot_username).lstrip("@")
    if args.days < 0:
        raise CommandError("--days cannot be negative")

    async def make() -> tuple[str, str, str]:
        async with database(config) as db, db.transaction() as session:
            project = await repo.project_by_code(session, args.project)
            if project is None:
                raise CommandError(f"no project with code {args.project!r}")
            grid = await repo.grid_by_code(session, project.id, args.grid)
            if grid is None:
                raise CommandError(
                    f"project {project.code} has no grid {args.grid!r}; add it with `minyi grid add`"
                )
            secret = config.link_secret or bytes.fromhex(
                await repo.get_or_create_setting(session, LINK_SECRET_SETTING, lambda: secrets.token_hex(32))
            )
            expires = (datetime.now(UTC) + timedelta(days=args.days)).date() if args.days else None
            payload = make_payload(secret, LinkTarget(project.id, grid.id, 0, expires))
            return project.title, grid.name, payload

    title, grid_name, payload = run(make())
    print(f"{title} · {grid_name}")
    print(f"typed code: {args.project}-{args.grid}")
    print(deep_link(username, payload))
    return 0
