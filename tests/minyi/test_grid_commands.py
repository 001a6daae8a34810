"""The grid workers' side of the command line: grid import, invitations, posters, pushes with a progress
bar, progress tables."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bot.fakeapi import FakeTelegram
from bot.links import read_payload
from minyi.cli import main
from storage import repository as repo
from storage import staff as staffing
from storage.database import Database
from storage.models import Grid, Invite, Person
from tests.bot.staff_support import add_residents, add_staff
from tests.conftest import LINK_SECRET, NEEDS_CJK_FONT, create_project
from tests.minyi.test_cli import Result

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LINK = re.compile(r"https://t\.me/\w+\?start=(?P<payload>[A-Za-z0-9_-]{1,64})")


async def minyi(*args: str, database_url: str, **settings: str) -> Result:
    """`minyi ARGS` in a thread of its own (its own event loop, as from a shell), with only these settings;
    the test's loop meanwhile serves the Bot API simulator."""
    env = {"MINYI_DATABASE_URL": database_url, "MINYI_SECRET_KEY": LINK_SECRET.hex(), **settings}

    def call() -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit:  # argparse refusing the arguments
                code = int(exit.code or 0)
        return Result(code, out.getvalue(), err.getvalue())

    saved = {name: value for name, value in os.environ.items() if name.startswith("MINYI_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(env)
    try:
        return await asyncio.to_thread(call)
    finally:
        for name in env:
            os.environ.pop(name, None)
        os.environ.update(saved)


async def grids(db: Database, project_id: int) -> list[tuple[str, str, str, int]]:
    async with db.reading() as session:
        rows = await repo.grids_of(session, project_id)
    return [(g.code, g.name, g.community, g.households) for g in rows]


@SQLITE_ONLY
async def test_grid_import_adds_and_updates_and_refuses_a_file_with_bad_rows_entirely(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    project = await create_project(db)
    good = tmp_path / "grids.csv"
    # As a spreadsheet saves it: a byte-order mark and Chinese headers in another order.
    good.write_text(
        "户数,网格编码,网格名称,社区\n120,G01,东风一网格,东风社区\n95,G03,东风三网格,东风社区\n", "utf-8-sig"
    )
    result = await minyi("grid", "import", str(good), "--project", "T1", database_url=database_url)
    assert result.code == 0, result
    assert "2 grids into T1: 1 new, 1 updated" in result.out
    good.write_text("code,name,community,households\nG03,东风三网格,东风社区,101\n", "utf-8")
    assert (await minyi("grid", "import", str(good), "--project", "T1", database_url=database_url)).code == 0
    expected = [
        ("G01", "东风一网格", "东风社区", 120),
        ("G02", "网格G02", "东风社区", 100),
        ("G03", "东风三网格", "东风社区", 101),
    ]
    assert await grids(db, project.id) == expected

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,households\nG04,四网格,80\nG 5,五网格,x\nG04,又一个四网格,10\n,没有编码,\n", "utf-8"
    )
    result = await minyi("grid", "import", str(bad), "--project", "T1", database_url=database_url)
    assert result.code == 1, result
    problems = [line for line in result.err.splitlines() if line.startswith(str(bad))]
    assert [p.split(":")[1] for p in problems] == ["3", "3", "4", "5"], result.err
    assert "nothing was imported" in result.err
    assert await grids(db, project.id) == expected  # not even the good first row


@NEEDS_CJK_FONT
@SQLITE_ONLY
async def test_invitations_and_a_workers_poster_from_the_command_line(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    project = await create_project(db)
    result = await minyi(
        "invite", "--role", "gridworker", "--project", "T1", "--grid", "G01", "--name", "王网格",
        "--bot-username", "minyi_test_bot", database_url=database_url,
    )  # fmt: skip
    assert result.code == 0, result
    found = LINK.search(result.out)
    assert found is not None and found.group("payload").startswith("inv_")
    assert "T1-G01 网格G01" in result.out
    async with db.transaction() as session:
        invite = await staffing.usable_invite(session, found.group("payload"))
        worker = await repo.ensure_person(session, 4242)
        await staffing.accept_invite(session, invite, worker)
    for wrong in (
        ("invite", "--role", "gridworker", "--project", "T1"),
        ("invite", "--role", "admin", "--project", "T1", "--grid", "G01"),
        ("invite", "--role", "gridworker", "--project", "T1", "--grid", "G09"),
    ):
        refused = await minyi(*wrong, database_url=database_url)
        assert refused.code == 1 and refused.err.startswith("minyi: ") and "Traceback" not in refused.err
    async with db.reading() as session:
        assert len((await session.scalars(select(Invite))).all()) == 1

    poster = tmp_path / "poster.png"
    args = ("link", "--project", "T1", "--grid", "G01", "--worker", str(worker.id), "--qr", str(poster))
    result = await minyi(*args, database_url=database_url)
    assert result.code == 0, result
    with Image.open(io.BytesIO(poster.read_bytes())) as image:
        assert image.format == "PNG" and image.size == (1240, 1754)
    link = LINK.search(result.out)
    assert link is not None
    target = read_payload(LINK_SECRET, link.group("payload"))
    assert (target.project_id, target.grid_id, target.worker_id) == (
        project.id,
        project.grid_ids["G01"],
        worker.id,
    )
    elsewhere = await minyi(
        "link", "--project", "T1", "--grid", "G02", "--worker", str(worker.id), database_url=database_url
    )
    assert elsewhere.code == 1 and "does not look after grid G02" in elsewhere.err


@SQLITE_ONLY
async def test_push_sends_with_a_progress_bar_and_progress_counts_by_grid(
    database_url: str, db: Database, fake: FakeTelegram
) -> None:
    project = await create_project(db)
    await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]])
    chat_ids = await add_residents(db, fake, project, 12)
    done = await add_residents(db, fake, project, 3, first_id=900_000, status="submitted", grid="G02")
    telegram = {
        "MINYI_BOT_TOKEN": fake.token,
        "MINYI_TELEGRAM_API_URL": fake.url,
        "MINYI_PUSH_RATE": "50",
        "MINYI_QUIET_HOURS": "off",
    }
    result = await minyi("push", "--project", "T1", "--grid", "G01", database_url=database_url, **telegram)
    assert result.code == 0, result
    assert "campaign 1: 12 residents of G01" in result.out
    assert result.out.rstrip().endswith("12/12: 12 sent, 0 blocked the bot, 0 not delivered")
    assert all(len(fake.chat_messages(chat)) == 1 for chat in chat_ids)
    assert all(fake.chat_messages(chat) == [] for chat in done)
    unanswered = await minyi(
        "push", "--project", "T1", "--only-unanswered", "--detach", database_url=database_url
    )
    assert "campaign 2: 12 residents of G01, G02" in unanswered.out and "queued" in unanswered.out

    table = await minyi("progress", "--project", "T1", database_url=database_url)
    assert table.code == 0, table
    lines = {line.split()[0]: line.split() for line in table.out.splitlines()[2:]}
    assert lines["G01"][2:] == ["100", "12", "0", "0", "0%"]
    assert lines["G02"][2:] == ["100", "3", "3", "0", "3%"]
    assert lines["total"][1:] == ["200", "15", "3", "0", "2%"]
    async with db.reading() as session:
        assert len((await session.scalars(select(Grid))).all()) == 2
        assert len((await session.scalars(select(Person))).all()) == 16
