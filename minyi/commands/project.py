"""`minyi project create`: set up a project and publish its questionnaire (grids: minyi/commands/grid.py)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.publishing import publish
from minyi.commands import CommandError
from minyi.commands.common import database, read_text, run, settings
from minyi.commands.survey import parse_or_fail
from storage import repository as repo
from storage.repository import RepositoryError


def register(subparsers: Any) -> None:
    project = subparsers.add_parser("project", help="projects under assessment")
    actions = project.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a project and publish its questionnaire")
    create.add_argument("--code", required=True, help="short code residents may type, e.g. RW2026")
    create.add_argument("--title", required=True)
    create.add_argument("--survey", required=True, metavar="FILE", help="questionnaire YAML")
    create.set_defaults(func=create_command)


def create_command(args: argparse.Namespace) -> int:
    source = read_text(args.survey)
    questionnaire = parse_or_fail(source, args.survey)
    code = args.code.strip()
    if not code or len(code) > 32 or not code.replace("-", "").replace("_", "").isalnum():
        raise CommandError("project code must be 1-32 letters, digits, '-' or '_'")

    async def create() -> str:
        async with database(settings()) as db, db.transaction() as session:
            try:
                project = await repo.create_project(session, code, args.title.strip())
                version, _ = await publish(session, project, questionnaire, source)
            except RepositoryError as error:
                raise CommandError(str(error)) from error
            repo.audit(session, "cli", "project.created", code, version=version.version)
            survey = f"questionnaire {questionnaire.id} v{version.version}"
            return f"created project {code}: {questionnaire.title} ({survey})"

    print(run(create()))
    return 0
