"""`minyi db upgrade`: create or migrate the database schema."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from minyi.commands import CommandError
from minyi.commands.common import settings
from storage.migrate import upgrade_sync


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database schema")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="create or migrate the tables to the newest schema")
    upgrade.set_defaults(func=upgrade_command)


def upgrade_command(_args: argparse.Namespace) -> int:
    config = settings()
    try:
        upgrade_sync(config.database_url)
    except (OperationalError, DBAPIError, OSError) as error:
        reason = str(getattr(error, "orig", error)).splitlines()[0]
        raise CommandError(f"cannot upgrade the database: {reason}") from error
    print(f"database is up to date: {config.database_url.split('@')[-1]}")
    return 0
