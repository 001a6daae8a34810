"""`minyi grid add|import`: a project's grids, one at a time or from a CSV file (all rows or none)."""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, run, settings
from storage import repository as repo

CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Column names as an administrator may write them, in English or Chinese.
COLUMNS = {
    "code": ("code", "grid", "grid_code", "编码", "网格编码", "网格代码"),
    "name": ("name", "grid_name", "名称", "网格名称", "网格"),
    "community": ("community", "社区", "所属社区"),
    "households": ("households", "户数", "住户数"),
}


def register(subparsers: Any) -> None:
    grid = subparsers.add_parser("grid", help="grids of a project")
    actions = grid.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a grid (or update it when the code exists)")
    add.add_argument("--project", required=True, metavar="CODE")
    add.add_argument("--code", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--community", default="")
    add.add_argument("--households", type=int, default=0)
    add.set_defaults(func=add_command)
    load = actions.add_parser(
        "import",
        help="add or update grids from a CSV file (columns: code, name, community, households)",
        description="Every row is checked first; if any row is wrong, nothing is imported. Re-importing "
        "a file updates the grids it names and never duplicates them.",
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument("--project", required=True, metavar="CODE")
    load.set_defaults(func=import_command)


def add_command(args: argparse.Namespace) -> int:
    async def add() -> str:
        async with database(settings()) as db, db.transaction() as session:
            project = await project_or_fail(session, args.project)
            if args.households < 0:
                raise CommandError("--households cannot be negative")
            grid = await repo.upsert_grid(
                session, project.id, args.code, args.name, args.community, args.households
            )
            repo.audit(session, "cli", "grid.saved", f"{project.code}/{grid.code}")
            return f"grid {project.code}-{grid.code}: {grid.name}"

    print(run(add()))
    return 0


@dataclass(frozen=True, slots=True)
class GridRow:
    line: int
    code: str
    name: str
    community: str
    households: int


def read_rows(path: str) -> tuple[list[GridRow], list[str]]:
    """The file's grids and every problem with them, each as "FILE:LINE: what is wrong"."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"{path}: cannot read it ({error.strerror})") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gbk")  # what spreadsheet programs in China often save as "CSV"
        except UnicodeDecodeError as error:
            raise CommandError(f"{path}: not UTF-8 or GBK text") from error
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise CommandError(f"{path}: the file is empty")
    columns = _columns(path, header)
    rows: list[GridRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue

        def cell(name: str, record: list[str] = record) -> str:
            index = columns.get(name)
            return record[index].strip() if index is not None and index < len(record) else ""

        code, name, community, households = cell("code"), cell("name"), cell("community"), cell("households")
        wrong = []
        if not CODE.match(code):
            wrong.append(f"grid code {code!r} must be 1-32 letters, digits, '-' or '_'")
        elif code.upper() in seen:
            wrong.append(f"grid code {code!r} is already on line {seen[code.upper()]}")
        if not name or len(name) > 100:
            wrong.append("the name must be 1-100 characters")
        if len(community) > 100:
            wrong.append("the community must be at most 100 characters")
        if households and not (households.isdigit() and int(households) <= 1_000_000):
            wrong.append(f"households {households!r} must be a whole number, 0 or more")
        if wrong:
            problems.extend(f"{path}:{line}: {what}" for what in wrong)
            continue
        seen[code.upper()] = line
        rows.append(GridRow(line, code, name, community, int(households or 0)))
    if not rows and not problems:
        problems.append(f"{path}: no grids after the header line")
    return rows, problems


def _columns(path: str, header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    columns = {}
    for field, spellings in COLUMNS.items():
        index = next((i for i, name in enumerate(names) if name in spellings), None)
        if index is not None:
            columns[field] = index
    missing = [field for field in ("code", "name") if field not in columns]
    if missing:
        raise CommandError(
            f"{path}:1: the header must name the columns code and name (also community, households); "
            f"missing: {', '.join(missing)}"
        )
    return columns


def import_command(args: argparse.Namespace) -> int:
    rows, problems = read_rows(args.file)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise CommandError(f"{args.file}: {len(problems)} problem(s); nothing was imported")

    async def load() -> tuple[int, int]:
        async with database(settings()) as db, db.transaction() as session:
            project = await project_or_fail(session, args.project)
            known = {g.code for g in await repo.grids_of(session, project.id)}
            for row in rows:
                await repo.upsert_grid(session, project.id, row.code, row.name, row.community, row.households)
            added = sum(1 for row in rows if row.code not in known)
            repo.audit(
                session,
                "cli",
                "grid.imported",
                project.code,
                file=Path(args.file).name,
                added=added,
                rows=len(rows),
            )
            return added, len(rows) - added

    added, updated = run(load())
    print(f"imported {len(rows)} grids into {args.project}: {added} new, {updated} updated")
    return 0
