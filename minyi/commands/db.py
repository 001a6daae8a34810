"""`minyi db upgrade`: create or migrate the database schema."""

from __future__ import annotations

import argparse
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import open_database, reason, settings
from storage.database import UNAVAILABLE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database schema")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="create or migrate the tables to the newest schema")
    upgrade.set_defaults(func=upgrade_command)


def upgrade_command(_args: argparse.Namespace) -> int:
    config = settings()
    open_database(config.database_url)  # a URL that cannot work is refused before Alembic sees it
    from storage.migrate import upgrade_sync

    try:
        upgrade_sync(config.database_url)
    except UNAVAILABLE as error:
        raise CommandError(f"cannot upgrade the database: {reason(error)}") from error
    print(f"database is up to date: {config.database_url.split('@')[-1]}")
    return 0
