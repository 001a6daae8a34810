"""`minyi report`: write the assessment file of a project (Word) or its data (Excel)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import database, project_or_fail, run, settings
from minyi.commands.console import console_config
from storage import repository as repo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="write the assessment report (.docx) or its data (.xlsx)")
    parser.add_argument("--project", required=True, metavar="CODE")
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--format", choices=["docx", "xlsx"], help="default: from the file name, else docx")
    parser.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    from console import report
    from console.charts import ChartFontError

    form = args.format or ("xlsx" if args.out.lower().endswith(".xlsx") else "docx")
    config = settings()
    zone = console_config(config).zone
    started = time.perf_counter()

    async def gather() -> report.ReportData:
        async with database(config) as db, db.transaction() as session:
            project = await project_or_fail(session, args.project)
            data = await report.gather(session, project, zone, answers=form == "xlsx")
            repo.audit(
                session, "cli", f"view.report.{form}", f"project:{project.code}", out=Path(args.out).name
            )
            return data

    data = run(gather())
    try:
        body = report.build_xlsx_bytes(data) if form == "xlsx" else report.build_docx_bytes(data)
    except ChartFontError as error:
        raise CommandError(str(error)) from None
    try:
        Path(args.out).write_bytes(body)
    except OSError as error:
        raise CommandError(f"{args.out}: cannot write ({error.strerror})") from error
    seconds = time.perf_counter() - started
    submitted = data.overview.participation.total.submitted
    print(
        f"wrote {args.out}: {submitted} questionnaires, {len(data.items)} risk items, {seconds:.1f} s",
        file=sys.stderr,
    )
    return 0
