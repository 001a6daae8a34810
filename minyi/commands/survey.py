"""`minyi survey check|publish|preview`: questionnaire files, their versions and a terminal preview."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.publishing import publish
from bot.questionnaire import Questionnaire
from bot.survey_file import SurveyFileError, check_survey, parse_survey
from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, read_text, run, settings
from storage import repository as repo
from storage.repository import RepositoryError


def register(subparsers: Any) -> None:
    survey = subparsers.add_parser("survey", help="questionnaire files")
    actions = survey.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a questionnaire file and list every error")
    check.add_argument("file")
    check.set_defaults(func=check_command)
    publish_parser = actions.add_parser("publish", help="publish a new version of a project's questionnaire")
    publish_parser.add_argument("file")
    publish_parser.add_argument("--project", required=True, metavar="CODE")
    publish_parser.set_defaults(func=publish_command)
    preview = actions.add_parser("preview", help="answer the questionnaire in this terminal")
    preview.add_argument("file")
    preview.set_defaults(func=preview_command)


def parse_or_fail(source: str, path: str) -> Questionnaire:
    try:
        return parse_survey(source, path)
    except SurveyFileError as error:
        raise CommandError(
            f"{path} has {len(error.errors)} error(s); run `minyi survey check {path}`"
        ) from error


def check_command(args: argparse.Namespace) -> int:
    source = read_text(args.file)
    errors = check_survey(source)
    for error in errors:
        print(f"{args.file}:{error}", file=sys.stderr)
    if errors:
        print(f"{args.file}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    questionnaire = parse_survey(source, args.file)
    count = len(questionnaire.questions)
    print(f"{args.file}: ok — {questionnaire.id} v{questionnaire.version}, {count} questions")
    return 0


def publish_command(args: argparse.Namespace) -> int:
    source = read_text(args.file)
    questionnaire = parse_or_fail(source, args.file)

    async def go() -> str:
        async with database(settings()) as db, db.transaction() as session:
            project = await project_or_fail(session, args.project)
            try:
                version, created = await publish(session, project, questionnaire, source)
            except RepositoryError as error:
                raise CommandError(str(error)) from error
            if not created:
                return f"{questionnaire.id} v{version.version} is already published; nothing changed"
            repo.audit(session, "cli", "survey.published", project.code, version=version.version)
            return f"published {questionnaire.id} v{version.version} for project {project.code}"

    print(run(go()))
    return 0


def preview_command(args: argparse.Namespace) -> int:
    from bot.transports.console import preview

    source = read_text(args.file)
    parse_or_fail(source, args.file)
    return run(preview(source))
