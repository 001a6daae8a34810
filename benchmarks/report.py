"""Report benchmark: the assessment file (Word) and the data file (Excel) for N submitted questionnaires.

Seeds a fresh SQLite file (or a PostgreSQL database) with N questionnaires, half with a tagged grievance, and
times gathering the figures, writing the .docx and writing the .xlsx, as `minyi report` does.

    python benchmarks/report.py --submissions 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console import report
from storage import repository as repo
from storage.database import Database
from storage.migrate import upgrade
from tests.console.seeding import seed


async def main(submissions: int, url: str | None) -> None:
    folder = tempfile.mkdtemp(prefix="minyi-report-")
    url = url or f"sqlite+aiosqlite:///{folder}/bench.db"
    await upgrade(url)
    db = Database(url)
    async with db.reading() as session:
        seeded = await repo.project_by_code(session, "RW") is not None
    if not seeded:  # a database given with --database-url is seeded once and reused
        started = time.perf_counter()
        await seed(db, submissions)
        print(f"seeded {submissions} questionnaires in {time.perf_counter() - started:.1f} s")
    zone = ZoneInfo("Asia/Shanghai")
    for kind in ("docx", "xlsx"):
        started = time.perf_counter()
        async with db.reading() as session:
            project = await repo.project_by_code(session, "RW")
            assert project is not None
            data = await report.gather(session, project, zone, answers=kind == "xlsx")
        gathered = time.perf_counter()
        body = await asyncio.to_thread(
            report.build_docx_bytes if kind == "docx" else report.build_xlsx_bytes, data
        )
        done = time.perf_counter()
        out = Path(folder) / f"report.{kind}"
        out.write_bytes(body)
        print(
            f"{kind}: gather {gathered - started:.2f} s, write {done - gathered:.2f} s, "
            f"total {done - started:.2f} s, {len(body) / 1e6:.1f} MB, "
            f"{len(data.overview.grievances)} grievances → {out}"
        )
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    args = parser.parse_args()
    asyncio.run(main(args.submissions, args.database_url))
