"""`minyi user add`: create an account for the web console (assessor, admin, or grid worker of some grids)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import database, grids_or_fail, project_or_fail, run, settings
from storage import accounts
from storage import repository as repo
from storage.repository import RepositoryError


def register(subparsers: Any) -> None:
    user = subparsers.add_parser("user", help="web console accounts")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a console account")
    add.add_argument("--role", required=True, choices=["assessor", "admin", "gridworker"])
    add.add_argument("--name", required=True, help="the name to sign in with")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    add.add_argument("--project", metavar="CODE", help="grid workers: the project of their grids")
    add.add_argument(
        "--grid", action="append", default=[], metavar="CODE", help="grid workers: a grid (repeat)"
    )
    add.set_defaults(func=add_command)


def _password(args: argparse.Namespace) -> str:
    from console.auth import password_problem

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CommandError("the two passwords differ")
    problem = password_problem(password)
    if problem:
        raise CommandError(problem)
    return password


def add_command(args: argparse.Namespace) -> int:
    from console.auth import hash_password

    name = args.name.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise CommandError("--name must be 1-64 characters without spaces")
    if args.role == "gridworker" and not (args.project and args.grid):
        raise CommandError("a grid worker needs --project and at least one --grid")
    if args.role != "gridworker" and args.grid:
        raise CommandError("only grid workers are limited to grids")
    password_hash = hash_password(_password(args))

    async def add() -> str:
        async with database(settings()) as db, db.transaction() as session:
            grid_ids: list[int] = []
            if args.grid:
                project = await project_or_fail(session, args.project)
                grid_ids = [grid.id for grid in await grids_or_fail(session, project, args.grid)]
            try:
                account = await accounts.create_account(session, name, args.role, password_hash, grid_ids)
            except RepositoryError as error:
                raise CommandError(str(error)) from error
            repo.audit(
                session, "cli", "account.created", f"account:{account.id}", role=args.role, grids=args.grid
            )
            return f"created {args.role} account {name!r}"

    print(run(add()))
    return 0
