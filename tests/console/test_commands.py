"""The user, report and retrain commands, as an administrator runs them.

Refusals run in this process (they are many); the commands that do real work run as processes."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert, select

from console.auth import verify_password
from storage.database import Database
from storage.models import Account, AccountGrid, AuditEntry, Review
from tests.console.seeding import seed
from tests.console.test_report import minyi


async def _run(db: Database, *args: str, stdin: str = "") -> tuple[int, str]:
    import asyncio
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env["MINYI_DATABASE_URL"] = db.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        *args,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 300)
    return process.returncode or 0, out.decode()


async def _in_process(db: Database, argv: list[str], stdin: str) -> tuple[int, str]:
    """`minyi ARGV` in a thread of this process (it runs its own event loop), with its output captured."""
    import asyncio
    import contextlib
    import io
    import os
    from unittest import mock

    from minyi.cli import main

    err = io.StringIO()
    env = {"MINYI_DATABASE_URL": db.url.render_as_string(hide_password=False)}
    with (
        mock.patch.dict(os.environ, env),
        mock.patch("sys.stdin", io.StringIO(stdin)),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(err),
    ):
        code = await asyncio.to_thread(main, argv)
    return code, err.getvalue()


async def test_user_add(db: Database) -> None:
    seeded = await seed(db, 4)
    code, out = await _run(
        db,
        "user",
        "add",
        "--role",
        "assessor",
        "--name",
        "zhang",
        "--password-stdin",
        stdin="a long passphrase\n",
    )
    assert code == 0 and "created assessor account 'zhang'" in out
    code, out = await _run(
        db,
        "user",
        "add",
        "--role",
        "gridworker",
        "--name",
        "wang",
        "--password-stdin",
        "--project",
        "RW",
        "--grid",
        "G02",
        stdin="another passphrase\n",
    )
    assert code == 0, out
    ok = "passphrase ok!\n"
    failures: list[tuple[tuple[str, ...], str, str]] = [
        (("--role", "admin", "--name", "zhang"), "already exists", ok),
        (("--role", "admin", "--name", "li"), "at least 10 characters", "short\n"),
        (("--role", "gridworker", "--name", "zhao"), "needs --project and at least one --grid", ok),
        (
            ("--role", "gridworker", "--name", "zhao", "--project", "RW", "--grid", "G09"),
            "has no grid 'G09'",
            ok,
        ),
        (("--role", "admin", "--name", "two words"), "without spaces", ok),
    ]
    for args, message, stdin in failures:
        code, out = await _in_process(db, ["user", "add", *args, "--password-stdin"], stdin)
        assert code == 1 and message in out, (args, out)
    async with db.reading() as session:
        accounts = {a.name: a for a in (await session.scalars(select(Account))).all()}
        grids = (await session.scalars(select(AccountGrid.grid_id))).all()
        audit = (await session.scalars(select(AuditEntry.action))).all()
    assert set(accounts) == {"zhang", "wang"}
    assert verify_password("a long passphrase", accounts["zhang"].password_hash)
    assert accounts["zhang"].password_hash.startswith("scrypt$32768$")
    assert grids == [seeded.project.grid_ids["G02"]] and audit.count("account.created") == 2


async def test_report_refuses_an_unknown_project(db: Database, tmp_path: Path) -> None:
    code, out = await minyi(
        db.url.render_as_string(hide_password=False),
        "report",
        "--project",
        "NOPE",
        "--out",
        str(tmp_path / "x.docx"),
    )
    assert code == 1 and "no project with code 'NOPE'" in out


async def test_a_report_without_a_chinese_font_says_what_to_install(db: Database, tmp_path: Path) -> None:
    await seed(db, 5)
    out_file = tmp_path / "x.docx"
    code, out = await minyi(
        db.url.render_as_string(hide_password=False),
        "report",
        "--project",
        "RW",
        "--out",
        str(out_file),
        MINYI_CJK_FONT=str(tmp_path / "no-such-font.ttc"),
    )
    assert code == 1 and "Traceback" not in out, out
    assert out.strip().splitlines() == [
        f"minyi: MINYI_CJK_FONT={tmp_path / 'no-such-font.ttc'} is not a font file"
    ]
    assert not out_file.exists()


async def test_retrain_on_confirmed_labels(db: Database, tmp_path: Path) -> None:
    code, out = await _run(db, "nlp", "train", "--from-db", "--out", str(tmp_path / "m"))
    assert code == 1 and "no confirmed categories" in out
    seeded = await seed(db, 12)
    async with db.transaction() as session:
        await session.execute(
            insert(Review),
            [
                {
                    "answer_id": a,
                    "status": "confirmed",
                    "categories": ["traffic"],
                    "suggested": [],
                    "answer_seq": 20,
                    "note": "",
                    "suggested_model": "",
                }
                for a in seeded.grievance_ids[:3]
            ]
            + [
                {
                    "answer_id": seeded.grievance_ids[3],
                    "status": "not_grievance",
                    "categories": [],
                    "suggested": [],
                    "answer_seq": 20,
                    "note": "",
                    "suggested_model": "",
                }
            ],
        )
    code, out = await _run(db, "nlp", "train", "--from-db", "--folds", "2", "--out", str(tmp_path / "m"))
    assert code == 0, out
    assert "4 confirmed grievances" in out
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text(encoding="utf-8"))
    assert "seed+confirmed" in json.dumps(meta, ensure_ascii=False)
