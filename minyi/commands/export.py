"""`minyi export responses`: one row per submission, every answer, as CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, run, settings
from storage import repository as repo
from storage.repository import SubmissionRow

FIXED = [
    "receipt",
    "status",
    "channel",
    "proxy",
    "anonymous",
    "grid_code",
    "grid_name",
    "survey_id",
    "version",
    "started_at",
    "submitted_at",
]
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="export data")
    kinds = parser.add_subparsers(dest="kind", metavar="WHAT", required=True)
    responses = kinds.add_parser("responses", help="one row per submission with all its answers")
    responses.add_argument("--project", required=True, metavar="CODE")
    responses.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    responses.add_argument(
        "--out", default="-", metavar="FILE", help="file to write (default: standard output)"
    )
    responses.set_defaults(func=responses_command)


def responses_command(args: argparse.Namespace) -> int:
    async def load() -> tuple[list[SubmissionRow], list[str]]:
        async with database(settings()) as db, db.reading() as session:
            project = await project_or_fail(session, args.project)
            rows = await repo.submission_rows(session, project.id)
            return rows, _question_order(rows)

    rows, questions = run(load())
    if args.out == "-":
        write(sys.stdout, args.format, rows, questions)
        return 0
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            write(out, args.format, rows, questions)
    except OSError as error:
        raise CommandError(f"{args.out}: cannot write ({error.strerror})") from error
    print(f"wrote {len(rows)} submissions to {args.out}", file=sys.stderr)
    return 0


def write(out: TextIO, form: str, rows: list[SubmissionRow], questions: list[str]) -> None:
    if form == "csv":
        write_csv(out, rows, questions)
    else:
        for row in rows:
            out.write(json.dumps(_record(row), ensure_ascii=False) + "\n")


def _question_order(rows: list[SubmissionRow]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for code in row.answers:
            seen.setdefault(code, None)
    return list(seen)


def _record(row: SubmissionRow) -> dict[str, Any]:
    return {
        "receipt": row.receipt,
        "status": row.status,
        "channel": row.channel,
        "proxy": row.proxy,
        "anonymous": row.anonymous,
        "grid_code": row.grid_code,
        "grid_name": row.grid_name,
        "survey_id": row.survey_id,
        "version": row.version,
        "started_at": row.started_at.isoformat(),
        "submitted_at": row.submitted_at.isoformat() if row.submitted_at else None,
        "answers": row.answers,
    }


def safe_cell(value: Any) -> str:
    """A cell as text that a spreadsheet shows and never evaluates."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_csv(out: TextIO, rows: list[SubmissionRow], questions: list[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(FIXED + questions)
    for row in rows:
        record = _record(row)
        writer.writerow(
            [safe_cell(record[k]) for k in FIXED] + [safe_cell(row.answers.get(q)) for q in questions]
        )
