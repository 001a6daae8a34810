"""The `minyi` command line as a real process: set-up, survey files, links, exports and clean failures."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.engine import LINK_SECRET_SETTING
from bot.fakeapi import FakeTelegram
from bot.links import LinkTarget, read_payload
from bot.survey_file import check_survey, survey_hash
from storage import repository as repo
from storage.database import Database
from storage.models import Channel, QuestionnaireVersion, SubmissionStatus
from tests.conftest import EXAMPLE_SURVEY, POSTGRES_URL, ROOT, create_project

# Paths as an administrator types them, relative to the repository (the commands run there).
EXAMPLE = "examples/road-widening.yaml"
BROKEN = "tests/bot/data/broken-survey.yaml"
TITLE = "人民路拓宽工程"
LINK_LINE = re.compile(r"https://t\.me/(?P<username>\w+)\?start=(?P<payload>[A-Za-z0-9_-]{1,64})")
COMMAND_TIMEOUT = 180  # only against a hung command: a busy machine can slow one down a lot


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def environment(database_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without any MINYI_* setting, then the database and `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MINYI_")}
    return {**env, "MINYI_DATABASE_URL": database_url, **settings}


async def minyi(*args: str, env: dict[str, str]) -> Result:
    """Run `minyi ARGS` as its own process in the repository, as an administrator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def assert_succeeded(result: Result) -> None:
    assert result.code == 0, result
    assert "Traceback" not in result.err, result


def assert_one_line_failure(result: Result, reason: str) -> None:
    """Exit code 1 and nothing on stderr but one line that contains `reason`."""
    assert result.code == 1, result
    assert "Traceback" not in result.err, result
    assert len(result.err.strip().splitlines()) == 1, result
    assert reason in result.err, result


def not_failing_in_one_line(runs: list[tuple[str, Result, str]]) -> str:
    """Of (command line, result, reason) triples, each run that did not fail as assert_one_line_failure
    wants, described; "" when all did."""
    wrong = []
    for command_line, result, reason in runs:
        try:
            assert_one_line_failure(result, reason)
        except AssertionError:
            wrong.append(f"{command_line}\n{result}")
    return "\n\n".join(wrong)


def deep_link_payload(result: Result, username: str) -> str:
    """The payload of the deep link that must be the last line of `minyi link`."""
    last_line = result.out.strip().splitlines()[-1]
    match = LINK_LINE.fullmatch(last_line)
    assert match is not None, f"last line is not a deep link: {last_line!r}"
    assert match["username"] == username
    return match["payload"]


async def link_secret(db: Database) -> bytes:
    """The key that signs links, which `minyi link` keeps in the database."""

    def none_stored() -> str:
        raise AssertionError("no link key in the database")

    async with db.transaction() as session:
        return bytes.fromhex(await repo.get_or_create_setting(session, LINK_SECRET_SETTING, none_stored))


def migrated_sqlite_copy(template: Path, directory: Path) -> str:
    path = directory / "minyi.db"
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


# --- from an empty database to a deep link -----------------------------------------------------------


async def _postgres_admin(statement: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'minyi.db'}"
        return
    request.getfixturevalue("postgres_database")  # skips (or fails in CI) when the server is missing
    name = f"minyi_cli_{uuid.uuid4().hex[:10]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_from_an_empty_database_to_a_deep_link(empty_database_url: str) -> None:
    env = environment(empty_database_url, MINYI_BOT_USERNAME="UnusedBot")
    create = ("project", "create", "--code", "RW2026", "--title", TITLE, "--survey", EXAMPLE)

    not_upgraded = await minyi(*create, env=env)
    assert_one_line_failure(not_upgraded, "minyi db upgrade")

    assert_succeeded(await minyi("db", "upgrade", env=env))
    created = await minyi(*create, env=env)
    assert_succeeded(created)
    assert "RW2026" in created.out
    grid = ("grid", "add", "--project", "RW2026", "--code", "G01", "--name", "东风一网格")
    assert_succeeded(await minyi(*grid, "--community", "东风社区", "--households", "120", env=env))
    link = await minyi("link", "--project", "RW2026", "--grid", "G01", "--bot-username", "X", env=env)
    assert_succeeded(link)
    payload = deep_link_payload(link, "X")  # the option wins over MINYI_BOT_USERNAME

    async with Database(empty_database_url) as db:
        async with db.reading() as session:
            project = await repo.project_by_code(session, "RW2026")
            assert project is not None and project.title == TITLE
            version = await repo.latest_version(session, project.id)
            grids = await repo.grids_of(session, project.id)
        secret = await link_secret(db)
    assert version is not None and (version.survey_id, version.version) == ("road-widening", 1)
    assert version.source == EXAMPLE_SURVEY.read_text(encoding="utf-8")
    assert [(g.code, g.name, g.community, g.households) for g in grids] == [
        ("G01", "东风一网格", "东风社区", 120)
    ]
    assert read_payload(secret, payload) == LinkTarget(project.id, grids[0].id)


async def test_link_takes_the_bot_username_from_the_environment(
    tmp_path: Path, sqlite_template: Path
) -> None:
    url = migrated_sqlite_copy(sqlite_template, tmp_path)
    async with Database(url) as db:
        project = await create_project(db, EXAMPLE_SURVEY, code="RW2026")
    env = environment(url, MINYI_BOT_USERNAME="@RenminRoadBot")
    link = await minyi("link", "--project", "RW2026", "--grid", "G02", env=env)
    assert_succeeded(link)
    payload = deep_link_payload(link, "RenminRoadBot")
    async with Database(url) as db:
        assert read_payload(await link_secret(db), payload) == LinkTarget(project.id, project.grid_ids["G02"])


# --- survey files ------------------------------------------------------------------------------------


async def test_survey_check_accepts_the_example_and_lists_every_mistake_of_a_broken_file(
    tmp_path: Path,
) -> None:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    good, broken = await asyncio.gather(
        minyi("survey", "check", EXAMPLE, env=env), minyi("survey", "check", BROKEN, env=env)
    )
    assert_succeeded(good)
    assert "ok" in good.out and good.err == ""

    mistakes = check_survey((ROOT / BROKEN).read_text(encoding="utf-8"))
    assert len(mistakes) > 1
    expected = [
        f"{BROKEN}:{m.line}: " + (f"[{m.question}] " if m.question else "") + m.message for m in mistakes
    ]
    assert broken.code == 1, broken
    assert "Traceback" not in broken.err
    printed = broken.err.splitlines()
    assert printed[: len(expected)] == expected
    assert printed[len(expected) :] == [f"{BROKEN}: {len(mistakes)} error(s)"]


async def test_publishing_keeps_every_published_version_unchanged(
    tmp_path: Path, sqlite_template: Path
) -> None:
    url = migrated_sqlite_copy(sqlite_template, tmp_path)
    async with Database(url) as db:
        await create_project(db, EXAMPLE_SURVEY, code="RW2026")
    env = environment(url)
    original = EXAMPLE_SURVEY.read_text(encoding="utf-8")
    edited = original.replace("title: 人民路拓宽工程 群众意见调查", "title: 人民路拓宽工程 意见调查（修订）")
    assert edited != original
    same_number = tmp_path / "edited-v1.yaml"
    same_number.write_text(edited, encoding="utf-8")
    next_number = tmp_path / "edited-v2.yaml"
    next_number.write_text(edited.replace("\nversion: 1\n", "\nversion: 2\n"), encoding="utf-8")

    again = await minyi("survey", "publish", EXAMPLE, "--project", "RW2026", env=env)
    assert_succeeded(again)
    assert "nothing changed" in again.out
    refused = await minyi("survey", "publish", str(same_number), "--project", "RW2026", env=env)
    assert_one_line_failure(refused, "version 1")
    published = await minyi("survey", "publish", str(next_number), "--project", "RW2026", env=env)
    assert_succeeded(published)
    assert "road-widening v2" in published.out

    async with Database(url) as db, db.reading() as session:
        query = select(QuestionnaireVersion.version, QuestionnaireVersion.source)
        versions = (await session.execute(query.order_by(QuestionnaireVersion.version))).all()
    assert [tuple(v) for v in versions] == [(1, original), (2, next_number.read_text(encoding="utf-8"))]


# --- export ------------------------------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://example.com/x","点这里")'


@dataclass
class Given:
    """What a submission stored, to compare with what the export says."""

    receipt: str = ""
    answers: dict[str, object] = field(default_factory=dict)


async def store_submissions(db: Database) -> tuple[Given, Given]:
    """Two submissions past consent (one on each questionnaire version) and one that never got past it."""
    project = await create_project(db, EXAMPLE_SURVEY, code="RW2026")
    source_v2 = EXAMPLE_SURVEY.read_text(encoding="utf-8").replace("\nversion: 1\n", "\nversion: 2\n")
    resident = Given(
        answers={
            "relation": "owner",
            "construction_concerns": ["noise", "dust"],
            "reasons": FORMULA,
            "suggestions": None,  # skipped
        }
    )
    visited = Given(answers={"relation": "tenant", "necessity": 4})
    async with db.transaction() as session:
        project_row = await repo.project_by_code(session, "RW2026")
        assert project_row is not None
        version_2, _ = await repo.publish_version(
            session,
            project_row,
            survey_id="road-widening",
            version=2,
            title=TITLE,
            source=source_v2,
            content_hash=survey_hash(source_v2),
        )
        worker = await repo.ensure_person(session, 5550001)
        for given, version_id, grid, channel, worker_id, status in [
            (resident, project.version_id, "G01", Channel.TELEGRAM, None, SubmissionStatus.IN_PROGRESS),
            (visited, version_2.id, "G02", Channel.VISIT, worker.id, SubmissionStatus.SUBMITTED),
        ]:
            submission = await repo.create_submission(
                session,
                project_id=project.id,
                version_id=version_id,
                grid_id=project.grid_ids[grid],
                person_id=None,
                channel=channel,
                entered_by_id=worker_id,
            )
            submission.current_step = "summary"
            submission.status = status
            if status == SubmissionStatus.SUBMITTED:
                submission.submitted_at = datetime.now(UTC)
            for code, value in given.answers.items():
                await repo.save_answer(session, submission, code, value)
            given.receipt = submission.receipt
        await repo.create_submission(  # still at the consent notice: nothing to export
            session,
            project_id=project.id,
            version_id=project.version_id,
            grid_id=None,
            person_id=None,
            channel=Channel.TELEGRAM,
        )
    return resident, visited


async def test_export_gives_one_row_per_submission_with_every_answer(
    tmp_path: Path, sqlite_template: Path
) -> None:
    url = migrated_sqlite_copy(sqlite_template, tmp_path)
    async with Database(url) as db:
        resident, visited = await store_submissions(db)
    env = environment(url)
    csv_file = tmp_path / "responses.csv"
    export = ("export", "responses", "--project", "RW2026")
    to_csv, to_jsonl = await asyncio.gather(
        minyi(*export, "--format", "csv", "--out", str(csv_file), env=env),
        minyi(*export, "--format", "jsonl", env=env),
    )
    assert_succeeded(to_csv)
    assert_succeeded(to_jsonl)

    records = [json.loads(line) for line in to_jsonl.out.splitlines()]
    assert [
        (r["receipt"], r["status"], r["version"], r["grid_code"], r["channel"], r["proxy"], r["answers"])
        for r in records
    ] == [
        (resident.receipt, "in_progress", 1, "G01", "telegram", False, resident.answers),
        (visited.receipt, "submitted", 2, "G02", "visit", True, visited.answers),
    ]
    assert records[0]["submitted_at"] is None and records[1]["submitted_at"] is not None

    with csv_file.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["receipt"], r["status"], r["version"], r["grid_code"], r["channel"]) for r in rows] == [
        (resident.receipt, "in_progress", "1", "G01", "telegram"),
        (visited.receipt, "submitted", "2", "G02", "visit"),
    ]
    first, second = rows
    assert first["reasons"] == "'" + FORMULA  # a spreadsheet shows it as text instead of running it
    assert first["construction_concerns"] == "noise;dust"
    assert (first["relation"], first["suggestions"], first["necessity"]) == ("owner", "", "")
    assert (second["relation"], second["necessity"], second["reasons"]) == ("tenant", "4", "")
    cells = [cell for row in csv.reader(io.StringIO(csv_file.read_text(encoding="utf-8"))) for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))]


# --- failures: one line, no traceback ----------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A command an administrator gets wrong, and what the one line of reason must mention."""

    name: str
    args: tuple[str, ...]
    reason: str  # a part of the one line that must explain it


MISTAKES = [
    Mistake("unknown project (link)", ("link", "--project", "NOPE", "--grid", "G01"), "NOPE"),
    Mistake("unknown project (export)", ("export", "responses", "--project", "NOPE"), "NOPE"),
    Mistake("unknown grid", ("link", "--project", "RW2026", "--grid", "G99"), "G99"),
    Mistake("missing file (check)", ("survey", "check", "missing.yaml"), "missing.yaml"),
    Mistake(
        "missing file (create)",
        ("project", "create", "--code", "RW2027", "--title", TITLE, "--survey", "missing.yaml"),
        "missing.yaml",
    ),
    Mistake("no bot token", ("run",), "MINYI_BOT_TOKEN"),
]


@pytest.fixture
async def set_up_database(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[str]:
    """A migrated SQLite file with project RW2026 and its grids G01 and G02."""
    url = migrated_sqlite_copy(sqlite_template, tmp_path)
    async with Database(url) as db:
        await create_project(db, EXAMPLE_SURVEY, code="RW2026")
    yield url


async def test_every_mistake_gets_a_one_line_reason_and_no_traceback(set_up_database: str) -> None:
    results = await asyncio.gather(*(minyi(*m.args, env=environment(set_up_database)) for m in MISTAKES))
    runs = [
        (f"{m.name}: minyi {' '.join(m.args)}", result, m.reason)
        for m, result in zip(MISTAKES, results, strict=True)
    ]
    assert not_failing_in_one_line(runs) == ""


async def test_a_database_url_minyi_cannot_use_gets_a_one_line_reason() -> None:
    # Each would need a driver Minyi does not use (or is no URL at all); `postgresql://` is the usual slip.
    attempts = [
        ("not a database url", ("db", "upgrade")),
        ("postgresql://postgres@127.0.0.1:5432/test", ("link", "--project", "RW2026", "--grid", "G01")),
    ]
    results = await asyncio.gather(*(minyi(*args, env=environment(url)) for url, args in attempts))
    runs = [
        (f"MINYI_DATABASE_URL={url!r} minyi {' '.join(args)}", result, "database")
        for (url, args), result in zip(attempts, results, strict=True)
    ]
    assert not_failing_in_one_line(runs) == ""


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_database")  # skips (or fails in CI) when the server is missing
async def test_a_postgresql_database_that_does_not_exist_is_named_in_the_reason() -> None:
    missing = f"minyi_missing_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{missing}"
    result = await minyi("link", "--project", "RW2026", "--grid", "G01", env=environment(url))
    # Not "run `minyi db upgrade`": that cannot create the database either.
    assert_one_line_failure(result, missing)


BAD_ARGUMENTS = [
    ("export", "responses", "--project", "RW2026", "--format", "xml"),  # not one of the choices
    ("grid", "add", "--project", "RW2026", "--code", "G03"),  # --name is missing
]


async def test_bad_arguments_get_the_usage_and_a_one_line_reason(tmp_path: Path) -> None:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    for args, result in zip(
        BAD_ARGUMENTS, await asyncio.gather(*(minyi(*a, env=env) for a in BAD_ARGUMENTS)), strict=True
    ):
        assert result.code == 2, (args, result)
        assert "Traceback" not in result.err, (args, result)
        # The synopsis of the command (argparse wraps it over several lines), then one line of reason.
        *usage, reason = result.err.strip().splitlines()
        assert usage[0].startswith("usage: minyi "), (args, result)
        assert all(line.startswith(" ") for line in usage[1:]), (args, result)
        assert reason.startswith("minyi ") and "error:" in reason, (args, result)


def test_a_reader_that_goes_away_ends_the_command_quietly(set_up_database: str) -> None:
    # `minyi export … | head`: the pipe closes before the command writes; no traceback, exit 141 (SIGPIPE).
    with subprocess.Popen(
        [sys.executable, "-m", "minyi.cli", "export", "responses", "--project", "RW2026", "--format", "csv"],
        cwd=ROOT,
        env=environment(set_up_database),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(COMMAND_TIMEOUT) == 141, err
    assert err == ""


async def test_a_bot_api_that_cannot_be_reached_or_refuses_the_token_is_named_in_one_line(
    set_up_database: str, fake: FakeTelegram
) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}"
    unreachable = await minyi(
        "run", env=environment(set_up_database, MINYI_BOT_TOKEN=fake.token, MINYI_TELEGRAM_API_URL=nowhere)
    )
    assert_one_line_failure(unreachable, f"cannot reach the Telegram Bot API at {nowhere}")
    refused = await minyi(
        "run", env=environment(set_up_database, MINYI_BOT_TOKEN="123:wrong", MINYI_TELEGRAM_API_URL=fake.url)
    )
    assert_one_line_failure(refused, "does not know MINYI_BOT_TOKEN (401)")
    assert "123:wrong" not in refused.err  # the token is the bot's password
    assert fake.calls_of("getUpdates") == []  # it never started polling
