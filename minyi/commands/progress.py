"""`minyi progress`: households, residents who started, submissions and response rate, grid by grid."""

from __future__ import annotations

import argparse
import unicodedata
from typing import Any

from minyi.commands.common import database, project_or_fail, run, settings
from storage import repository as repo
from storage import staff as staffing
from storage.staff import GridProgress


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("progress", help="how far the survey has got, grid by grid")
    parser.add_argument("--project", required=True, metavar="CODE")
    parser.set_defaults(func=progress_command)


def progress_command(args: argparse.Namespace) -> int:
    async def load() -> tuple[str, list[GridProgress]]:
        async with database(settings()) as db, db.reading() as session:
            project = await project_or_fail(session, args.project)
            grids = await repo.grids_of(session, project.id)
            return project.title, await staffing.grid_progress(session, [g.id for g in grids])

    title, rows = run(load())
    print(f"{args.project} {title}")
    header = ("grid", "name", "households", "started", "submitted", "at door", "rate")
    table = [header]
    for row in rows:
        table.append(
            (
                row.code,
                row.name,
                str(row.households),
                str(row.started),
                str(row.submitted),
                str(row.visits),
                _rate(row),
            )
        )
    households = sum(r.households for r in rows)
    submitted = sum(r.submitted for r in rows)
    total = GridProgress(
        0, "", "", households, sum(r.started for r in rows), submitted, sum(r.visits for r in rows)
    )
    table.append(
        ("total", "", str(households), str(total.started), str(submitted), str(total.visits), _rate(total))
    )
    widths = [max(_width(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(line)).rstrip())
    return 0


def _rate(row: GridProgress) -> str:
    return f"{row.rate:.0%}" if row.households else "-"


def _width(text: str) -> int:
    """Columns a terminal gives the text: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
