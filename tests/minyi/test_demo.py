"""`minyi demo` as a newcomer runs it: from any folder, offline, ending with numbers the database holds."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path

from tests.minyi.test_cli import assert_one_line_failure, assert_succeeded, environment, minyi

DEMO_TIMEOUT = 300  # only against a hung demo: a busy machine can slow the bot's start-up a lot


async def test_the_demo_runs_from_another_folder_and_reports_what_the_database_holds(
    tmp_path: Path,
) -> None:
    # Not the repository: the demo's relative --dir must reach the bot, which runs in a process of its own.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        "demo",
        "--residents",
        "12",
        "--dir",
        "data",
        cwd=tmp_path,
        env=environment("sqlite+aiosqlite:///unused.db"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), DEMO_TIMEOUT)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 0, f"{out}\n{err}"
    assert "Traceback" not in err, err

    database = tmp_path / "data" / "demo.db"
    assert f"The data is in {database}." in out
    printed = {
        name: int(number)
        for name, number in re.findall(r"^\s+(submitted|in progress|declined|answers)\s+(\d+)", out, re.M)
    }
    with sqlite3.connect(database) as connection:
        statuses = dict(
            connection.execute("select status, count(*) from submissions group by status").fetchall()
        )
        answers = connection.execute("select count(*) from answers").fetchone()[0]
    assert printed["submitted"] == statuses.get("submitted", 0) > 0
    assert printed["in progress"] == statuses.get("in_progress", 0)
    assert printed["answers"] == answers > 0
    # Declining keeps no submission: every resident is either declined or has one.
    assert printed["submitted"] + printed["in progress"] + printed["declined"] == 12


async def test_a_demo_folder_that_cannot_be_made_gets_a_one_line_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = await minyi("demo", "--dir", str(blocker / "data"), env=environment("sqlite:///unused.db"))
    assert_one_line_failure(result, "cannot use")
    result = await minyi("demo", "--residents", "0", env=environment("sqlite:///unused.db"))
    assert_one_line_failure(result, "--residents")
    assert_succeeded(await minyi("demo", "--help", env=environment("sqlite:///unused.db")))
