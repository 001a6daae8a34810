"""`minyi link`: the signed deep link that brings a resident to a project's grid (and a worker's poster)."""

from __future__ import annotations

import argparse
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.engine import LINK_SECRET_SETTING
from bot.links import LinkTarget, deep_link, make_payload
from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, run, settings
from storage import repository as repo
from storage import staff as staffing
from storage.models import Person, Role


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
    parser.add_argument(
        "--worker",
        type=int,
        default=0,
        metavar="ID",
        help="the grid worker (person id) whose poster this is: answers through it are attributed to them",
    )
    parser.add_argument(
        "--qr", default="", metavar="FILE.png", help="also write a printable QR poster of the link"
    )
    parser.set_defaults(func=link_command)


def link_command(args: argparse.Namespace) -> int:
    config = settings()
    username = (args.bot_username or config.bot_username).lstrip("@")
    if args.days < 0:
        raise CommandError("--days cannot be negative")
    if args.qr and not args.qr.lower().endswith(".png"):
        raise CommandError("--qr writes a PNG image: give a file name ending in .png")

    async def make() -> tuple[str, str, str]:
        async with database(config) as db, db.transaction() as session:
            project = await project_or_fail(session, args.project)
            grid = await repo.grid_by_code(session, project.id, args.grid)
            if grid is None:
                raise CommandError(
                    f"project {project.code} has no grid {args.grid!r}; add it with `minyi grid add`"
                )
            secret = config.link_secret or bytes.fromhex(
                await repo.get_or_create_setting(session, LINK_SECRET_SETTING, lambda: secrets.token_hex(32))
            )
            if args.worker:
                worker = await session.get(Person, args.worker)
                if worker is None or worker.role != Role.GRIDWORKER:
                    raise CommandError(f"person {args.worker} is not a grid worker")
                if grid.id not in await staffing.grid_ids_of_worker(session, worker.id):
                    raise CommandError(f"person {args.worker} does not look after grid {grid.code}")
            expires = (datetime.now(UTC) + timedelta(days=args.days)).date() if args.days else None
            payload = make_payload(secret, LinkTarget(project.id, grid.id, args.worker, expires))
            return project.title, grid.name, payload

    title, grid_name, payload = run(make())
    link = deep_link(username, payload)
    code = f"{args.project}-{args.grid}"
    if args.qr:
        from bot.poster import FontMissing, make_poster  # Pillow and qrcode: only when asked for

        try:
            Path(args.qr).write_bytes(make_poster(link, title, grid_name, code))
        except FontMissing as error:
            raise CommandError(str(error)) from error
        except OSError as error:
            raise CommandError(f"{args.qr}: cannot write ({error.strerror})") from error
    print(f"{title} · {grid_name}")
    print(f"typed code: {code}")
    if args.qr:
        print(f"poster: {args.qr}")
    print(link)
    return 0
