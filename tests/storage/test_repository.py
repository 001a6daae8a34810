"""Storage on SQLite and PostgreSQL: projects, versions, grids, codes, people, answers, reports, schema."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import create_async_engine

from storage import repository as repo
from storage.database import Database
from storage.models import (
    Answer,
    AuditEntry,
    Base,
    Channel,
    Person,
    ProcessedUpdate,
    Project,
    QuestionnaireVersion,
    Setting,
    Submission,
    SubmissionStatus,
)
from storage.repository import RepositoryError
from tests.conftest import create_project

SURVEY_ID = "road-widening"


async def count_rows(db: Database, model: type[Base]) -> int:
    async with db.reading() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def publish(
    db: Database, project_code: str, version: int, source: str, survey_id: str = SURVEY_ID
) -> tuple[QuestionnaireVersion, bool]:
    """Publish `source` as `version` of the project's questionnaire, in a transaction of its own."""
    async with db.transaction() as session:
        project = await repo.project_by_code(session, project_code)
        assert project is not None
        return await repo.publish_version(
            session,
            project,
            survey_id=survey_id,
            version=version,
            title=f"问卷 v{version}",
            source=source,
            content_hash=hashlib.sha256(source.encode()).hexdigest(),
        )


async def new_project(db: Database, code: str = "RW2026") -> int:
    async with db.transaction() as session:
        return (await repo.create_project(session, code, "人民路拓宽工程")).id


async def new_submission(
    db: Database,
    project_id: int,
    version_id: int,
    grid_id: int | None,
    *,
    step: str = "relation",
    status: str = SubmissionStatus.IN_PROGRESS,
    channel: str = Channel.TELEGRAM,
    answers: dict[str, Any] | None = None,
    entered_by_id: int | None = None,
) -> Submission:
    async with db.transaction() as session:
        submission = await repo.create_submission(
            session,
            project_id=project_id,
            version_id=version_id,
            grid_id=grid_id,
            person_id=None,
            channel=channel,
            entered_by_id=entered_by_id,
        )
        submission.current_step = step
        submission.status = status
        if status == SubmissionStatus.SUBMITTED:
            submission.submitted_at = datetime.now(UTC)
        for code, value in (answers or {}).items():
            await repo.save_answer(session, submission, code, value)
        return submission


# --- projects and questionnaire versions -------------------------------------------------------------


async def test_a_created_project_is_found_by_its_code(db: Database) -> None:
    project_id = await new_project(db, "RW2026")
    async with db.reading() as session:
        found = await repo.project_by_code(session, "RW2026")
        missing = await repo.project_by_code(session, "RW2027")
    assert found is not None and found.id == project_id and found.title == "人民路拓宽工程"
    assert missing is None


async def test_a_project_code_can_be_used_only_once(db: Database) -> None:
    await new_project(db, "RW2026")
    with pytest.raises(RepositoryError, match="RW2026"):
        await new_project(db, "RW2026")
    assert await count_rows(db, Project) == 1


async def test_publishing_the_same_content_again_changes_nothing(db: Database) -> None:
    await new_project(db)
    first, created = await publish(db, "RW2026", 1, "第一版")
    again, created_again = await publish(db, "RW2026", 1, "第一版")
    assert created is True and created_again is False
    assert again.id == first.id
    assert await count_rows(db, QuestionnaireVersion) == 1


async def test_other_content_under_a_used_version_number_is_refused(db: Database) -> None:
    await new_project(db)
    await publish(db, "RW2026", 1, "第一版")
    with pytest.raises(RepositoryError, match="immutable"):
        await publish(db, "RW2026", 1, "第一版，改了一个字")
    async with db.reading() as session:
        sources = (await session.scalars(select(QuestionnaireVersion.source))).all()
    assert sources == ["第一版"]


async def test_a_version_number_older_than_the_published_one_is_refused(db: Database) -> None:
    await new_project(db)
    await publish(db, "RW2026", 1, "第一版")
    await publish(db, "RW2026", 3, "第三版")
    with pytest.raises(RepositoryError, match="older"):
        await publish(db, "RW2026", 2, "第二版")
    assert await count_rows(db, QuestionnaireVersion) == 2


async def test_latest_version_is_the_newest_published_of_that_project(db: Database) -> None:
    project_id = await new_project(db, "RW2026")
    other_id = await new_project(db, "OTHER")
    async with db.reading() as session:
        assert await repo.latest_version(session, project_id) is None
    await publish(db, "RW2026", 1, "第一版")
    await publish(db, "RW2026", 2, "第二版")
    await publish(db, "OTHER", 7, "别的工程")
    async with db.reading() as session:
        latest = await repo.latest_version(session, project_id)
        other = await repo.latest_version(session, other_id)
    assert latest is not None and (latest.version, latest.source) == (2, "第二版")
    assert other is not None and other.version == 7


# --- grids and typed codes ---------------------------------------------------------------------------


async def test_reimporting_a_grid_updates_it_instead_of_adding_another(db: Database) -> None:
    project_id = await new_project(db)
    async with db.transaction() as session:
        first = await repo.upsert_grid(session, project_id, "G01", "一网格", "东风社区", 100)
    async with db.transaction() as session:
        again = await repo.upsert_grid(session, project_id, "G01", "第一网格", "人民社区", 120)
    async with db.reading() as session:
        grids = await repo.grids_of(session, project_id)
    assert again.id == first.id
    assert [(g.code, g.name, g.community, g.households) for g in grids] == [
        ("G01", "第一网格", "人民社区", 120)
    ]


@pytest.mark.parametrize("typed", ["T1-G01", "t1 g01", "T1_G01", "  t1-g01 "])
async def test_a_typed_project_and_grid_code_is_found_whatever_the_case_and_separator(
    db: Database, typed: str
) -> None:
    project = await create_project(db, code="T1")
    async with db.reading() as session:
        found = await repo.find_typed_code(session, typed)
    assert found is not None
    assert (found[0].id, found[1] and found[1].id) == (project.id, project.grid_ids["G01"])


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("Ｔ１－Ｇ０１", id="full-width"),  # what a Chinese keyboard in full-width mode types
        pytest.param("T1－G01", id="full-width-hyphen"),
        pytest.param("T1 - G01", id="spaced-hyphen"),
        pytest.param("t1  g01", id="two-spaces"),
    ],
)
async def test_a_typed_code_in_full_width_or_with_a_spaced_separator_is_found(
    db: Database, typed: str
) -> None:
    project = await create_project(db, code="T1")
    async with db.reading() as session:
        found = await repo.find_typed_code(session, typed)
    assert found is not None
    assert (found[0].id, found[1] and found[1].id) == (project.id, project.grid_ids["G01"])


async def test_a_typed_project_code_alone_names_the_project_without_a_grid(db: Database) -> None:
    project = await create_project(db, code="T1")
    async with db.reading() as session:
        found = await repo.find_typed_code(session, "t1")
    assert found is not None and found[0].id == project.id and found[1] is None


async def test_a_grid_code_alone_is_found_when_only_one_project_has_it(db: Database) -> None:
    project = await create_project(db, code="T1")
    async with db.reading() as session:
        found = await repo.find_typed_code(session, "g02")
    assert found is not None
    assert (found[0].id, found[1] and found[1].id) == (project.id, project.grid_ids["G02"])


async def test_a_grid_code_that_two_projects_share_is_ambiguous(db: Database) -> None:
    await create_project(db, code="T1")
    second = await create_project(db, code="T2")  # also has G01 and G02
    async with db.reading() as session:
        alone = await repo.find_typed_code(session, "G01")
        with_project = await repo.find_typed_code(session, "T2-G01")
    assert alone is None
    assert with_project is not None and with_project[1] is not None
    assert with_project[1].id == second.grid_ids["G01"]


@pytest.mark.parametrize("typed", ["T9-G01", "T1-G99", "G99", "", "   "])
async def test_an_unknown_code_finds_nothing(db: Database, typed: str) -> None:
    await create_project(db, code="T1")
    async with db.reading() as session:
        assert await repo.find_typed_code(session, typed) is None


# --- people and updates ------------------------------------------------------------------------------


async def test_ensuring_a_person_twice_keeps_one_row(db: Database) -> None:
    async with db.transaction() as session:
        first = await repo.ensure_person(session, 777_000_111_222)  # Telegram ids exceed 32 bits
    async with db.transaction() as session:
        again = await repo.ensure_person(session, 777_000_111_222)
        same_transaction = await repo.ensure_person(session, 777_000_111_222)
    assert first.id == again.id == same_transaction.id
    assert again.telegram_id == 777_000_111_222 and again.role == "resident"
    assert await count_rows(db, Person) == 1


async def test_an_update_is_claimed_only_once(db: Database) -> None:
    async with db.transaction() as session:
        assert await repo.claim_update(session, 9_000_000_001) is True
        assert await repo.claim_update(session, 9_000_000_001) is False
    async with db.transaction() as session:
        assert await repo.claim_update(session, 9_000_000_001) is False
        assert await repo.claim_update(session, 9_000_000_002) is True


# What the engine's first statement reads must be what the session would load, inside its transaction.

CLAIMING_ID = 5_550_001


async def claiming_resident(db: Database) -> tuple[int, int]:
    """A resident in the middle of a questionnaire: (person id, submission id)."""
    project = await create_project(db)
    submission = await new_submission(db, project.id, project.version_id, project.grid_ids["G01"])
    async with db.transaction() as session:
        person = await repo.ensure_person(session, CLAIMING_ID)
        person.active_submission_id = submission.id
        row = await session.get(Submission, submission.id)
        assert row is not None
        row.person_id = person.id
        row.draft = {"picked": ["noise", "dust"]}
    return person.id, submission.id


def column_values(instance: object) -> dict[str, object]:
    return {
        attribute.key: getattr(instance, attribute.key) for attribute in inspect(instance).mapper.column_attrs
    }


async def test_the_claim_gives_the_objects_the_session_would_have_loaded(db: Database) -> None:
    person_id, submission_id = await claiming_resident(db)
    async with db.reading() as session:
        loaded_person = await session.get(Person, person_id)
        loaded_submission = await session.get(Submission, submission_id)
    async with db.transaction() as session:
        claimed, person, submission = await repo.claim_update_and_sender(session, 1, CLAIMING_ID)
        assert claimed and person is not None and submission is not None
        assert column_values(person) == column_values(loaded_person)
        assert column_values(submission) == column_values(loaded_submission)
        assert person in session and submission in session
        assert not session.dirty and not session.new  # nothing to write back at commit
        # They are the session's own: a change to one is written at commit like any other.
        person.display_name = "王"
        assert await session.get(Person, person_id) is person
    async with db.reading() as session:
        assert (await session.scalar(select(Person.display_name).where(Person.id == person_id))) == "王"


async def test_the_claim_of_someone_unknown_claims_the_update_and_finds_nobody(db: Database) -> None:
    async with db.transaction() as session:
        assert await repo.claim_update_and_sender(session, 7, 9_999_999) == (True, None, None)
    async with db.transaction() as session:
        assert await repo.claim_update_and_sender(session, 7, 9_999_999) == (False, None, None)


async def test_a_claim_rolled_back_is_undone(db: Database) -> None:
    await claiming_resident(db)

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted):
        async with db.transaction() as session:
            claimed, _person, submission = await repo.claim_update_and_sender(session, 2, CLAIMING_ID)
            assert claimed and submission is not None
            await repo.save_answer(session, submission, "relation", "owner", step=repo.Step("q2", {}, False))
            raise Interrupted
    async with db.transaction() as session:
        claimed, _person, submission = await repo.claim_update_and_sender(session, 2, CLAIMING_ID)
        assert claimed, "the claim outlived its rolled-back transaction"
        assert submission is not None and submission.answer_count == 0 and submission.current_step != "q2"
        assert await repo.answers_of(session, submission.id) == {}


async def test_the_sender_stays_locked_until_the_transaction_ends(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite locks the whole database at BEGIN IMMEDIATE, not rows")
    person_id, _submission_id = await claiming_resident(db)
    other = await asyncpg.connect(db.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        lock = "SELECT id FROM people WHERE id = $1 FOR UPDATE NOWAIT"
        async with db.transaction() as session:
            assert (await repo.claim_update_and_sender(session, 3, CLAIMING_ID))[0]
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                async with other.transaction():
                    await other.fetchval(lock, person_id)
        async with other.transaction():
            assert await other.fetchval(lock, person_id) == person_id
    finally:
        await other.close()


# --- answers -----------------------------------------------------------------------------------------


async def test_changing_an_answer_keeps_one_row_and_gives_it_the_next_seq(db: Database) -> None:
    project = await create_project(db)
    submission = await new_submission(
        db, project.id, project.version_id, project.grid_ids["G01"], answers={"relation": "owner"}
    )
    async with db.transaction() as session:
        row = await session.get(Submission, submission.id)
        assert row is not None
        await repo.save_answer(session, row, "attitude", "oppose", raw_text="不支持")
        earlier = (await repo.answers_of(session, row.id))["relation"]
        await repo.save_answer(session, row, "relation", "tenant", existing=earlier)
    async with db.reading() as session:
        answers = await repo.answers_of(session, submission.id)
        stored = await session.get(Submission, submission.id)
    assert list(answers) == ["attitude", "relation"]  # ordered by seq: the changed answer comes last
    assert answers["relation"].value == {"v": "tenant"}
    assert (answers["attitude"].seq, answers["relation"].seq) == (2, 3)
    assert answers["attitude"].raw_text == "不支持"
    assert stored is not None and stored.answer_count == 3
    assert await count_rows(db, Answer) == 2


async def test_delete_answers_removes_the_named_questions_or_all(db: Database) -> None:
    project = await create_project(db)
    answers = {"relation": "owner", "attitude": "oppose", "reasons": "补偿太低"}
    mine = await new_submission(db, project.id, project.version_id, None, answers=answers)
    other = await new_submission(db, project.id, project.version_id, None, answers=answers)
    async with db.transaction() as session:
        await repo.delete_answers(session, mine.id, ["attitude", "reasons"])
    async with db.reading() as session:
        assert list(await repo.answers_of(session, mine.id)) == ["relation"]
    async with db.transaction() as session:
        await repo.delete_answers(session, mine.id)
    async with db.reading() as session:
        assert await repo.answers_of(session, mine.id) == {}
        assert list(await repo.answers_of(session, other.id)) == ["relation", "attitude", "reasons"]


# --- reports -----------------------------------------------------------------------------------------


async def test_submission_rows_list_each_submission_past_consent_with_every_answer(db: Database) -> None:
    project = await create_project(db)
    async with db.transaction() as session:
        worker = await repo.ensure_person(session, 1001)
    await new_submission(db, project.id, project.version_id, project.grid_ids["G01"], step="consent")
    submitted = await new_submission(
        db,
        project.id,
        project.version_id,
        project.grid_ids["G01"],
        step="summary",
        status=SubmissionStatus.SUBMITTED,
        answers={"relation": "owner", "concerns": ["noise", "dust"], "suggestions": None},
    )
    visited = await new_submission(
        db,
        project.id,
        project.version_id,
        None,
        channel=Channel.VISIT,
        entered_by_id=worker.id,
        answers={"relation": "tenant"},
    )
    async with db.reading() as session:
        rows = await repo.submission_rows(session, project.id)

    assert [r.receipt for r in rows] == [submitted.receipt, visited.receipt]
    first, second = rows
    assert (first.status, first.channel) == ("submitted", "telegram")
    assert (first.proxy, first.anonymous) == (False, False)
    assert (first.survey_id, first.version) == ("contract", 1)
    assert (first.grid_code, first.grid_name) == ("G01", "网格G01")
    assert first.answers == {"relation": "owner", "concerns": ["noise", "dust"], "suggestions": None}
    assert first.submitted_at is not None and first.started_at <= first.submitted_at
    assert (second.status, second.channel, second.proxy) == ("in_progress", "visit", True)
    assert (second.grid_code, second.grid_name, second.submitted_at) == ("", "", None)
    assert second.answers == {"relation": "tenant"}


async def test_count_by_status_groups_submissions_past_consent_by_grid_and_status(db: Database) -> None:
    project = await create_project(db)
    g01, g02 = project.grid_ids["G01"], project.grid_ids["G02"]
    done = SubmissionStatus.SUBMITTED
    for grid, status, step in [
        (g01, done, "summary"),
        (g01, done, "summary"),
        (g01, SubmissionStatus.IN_PROGRESS, "attitude"),
        (g01, SubmissionStatus.IN_PROGRESS, "consent"),  # never agreed: not counted
        (g02, SubmissionStatus.WITHDRAWN, "summary"),
        (None, done, "summary"),
    ]:
        await new_submission(db, project.id, project.version_id, grid, step=step, status=status)
    other = await create_project(db, code="T2")
    await new_submission(db, other.id, other.version_id, other.grid_ids["G01"], step="summary", status=done)

    async with db.reading() as session:
        counts = await repo.count_by_status(session, project.id)
    assert counts == {
        ("G01", "submitted"): 2,
        ("G01", "in_progress"): 1,
        ("G02", "withdrawn"): 1,
        ("", "submitted"): 1,
    }


# --- audit and settings ------------------------------------------------------------------------------


async def test_audit_entries_keep_actor_action_target_and_detail(db: Database) -> None:
    async with db.transaction() as session:
        repo.audit(session, "cli", "survey.published", "RW2026", version=2, note="第二版")
        repo.audit(session, "person:12", "submission.withdrawn")
    async with db.reading() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(e.actor, e.action, e.target, e.detail) for e in entries] == [
        ("cli", "survey.published", "RW2026", {"version": 2, "note": "第二版"}),
        ("person:12", "submission.withdrawn", "", {}),
    ]


async def test_a_setting_is_made_once_and_then_kept(db: Database) -> None:
    def must_not_be_called() -> str:
        raise AssertionError("the setting exists; it must not be made again")

    async with db.transaction() as session:
        made = await repo.get_or_create_setting(session, "link_secret", lambda: "a1b2c3")
        in_same_transaction = await repo.get_or_create_setting(session, "link_secret", must_not_be_called)
    async with db.transaction() as session:
        later = await repo.get_or_create_setting(session, "link_secret", must_not_be_called)
    assert made == in_same_transaction == later == "a1b2c3"
    assert await count_rows(db, Setting) == 1


# --- timestamps --------------------------------------------------------------------------------------


async def test_timestamps_come_back_timezone_aware_in_utc(db: Database) -> None:
    before = datetime.now(UTC)
    project = await create_project(db)
    await new_submission(
        db,
        project.id,
        project.version_id,
        None,
        step="summary",
        status=SubmissionStatus.SUBMITTED,
        answers={"relation": "owner"},
    )
    async with db.transaction() as session:
        await repo.claim_update(session, 1)
        repo.audit(session, "cli", "test")
    async with db.reading() as session:
        times = {
            "project.created_at": await session.scalar(select(Project.created_at)),
            "version.published_at": await session.scalar(select(QuestionnaireVersion.published_at)),
            "submission.started_at": await session.scalar(select(Submission.started_at)),
            "submission.submitted_at": await session.scalar(select(Submission.submitted_at)),
            "answer.answered_at": await session.scalar(select(Answer.answered_at)),
            "audit.at": await session.scalar(select(AuditEntry.at)),
            "update.processed_at": await session.scalar(select(ProcessedUpdate.processed_at)),
        }
    for name, value in times.items():
        assert value is not None and value.utcoffset() == timedelta(0), f"{name} = {value!r}"
        assert before - timedelta(seconds=1) <= value <= datetime.now(UTC), f"{name} = {value!r}"


async def test_a_time_given_in_another_zone_keeps_its_instant(db: Database) -> None:
    project = await create_project(db)
    submission = await new_submission(db, project.id, project.version_id, None)
    beijing_nine_am = datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    async with db.transaction() as session:
        row = await session.get(Submission, submission.id)
        assert row is not None
        row.submitted_at = beijing_nine_am
    async with db.reading() as session:
        stored = await session.get(Submission, submission.id)
    assert stored is not None and stored.submitted_at == datetime(2026, 5, 1, 1, 0, tzinfo=UTC)


async def test_a_naive_time_is_refused(db: Database) -> None:
    project = await create_project(db)
    submission = await new_submission(db, project.id, project.version_id, None)
    with pytest.raises(StatementError, match="naive"):
        async with db.transaction() as session:
            row = await session.get(Submission, submission.id)
            assert row is not None
            row.submitted_at = datetime(2026, 5, 1, 9, 0)  # naive: the mistake under test


# --- many writers at once ----------------------------------------------------------------------------


async def insert_answers_at_once(databases: list[Database], submission_id: int, writers: int) -> list[str]:
    """`writers` concurrent transactions, spread over the databases, each inserting one answer row."""

    async def write(number: int) -> None:
        async with databases[number % len(databases)].transaction() as session:
            answer = Answer(submission_id=submission_id, question_code=f"q{number:03d}", value={"v": number})
            session.add(answer)

    results = await asyncio.gather(*(write(n) for n in range(writers)), return_exceptions=True)
    return [f"writer {n}: {r!r}" for n, r in enumerate(results) if isinstance(r, BaseException)]


async def stored_answer_values(db: Database, submission_id: int) -> list[Any]:
    async with db.reading() as session:
        return sorted(a.value["v"] for a in (await repo.answers_of(session, submission_id)).values())


async def test_a_burst_of_200_writers_loses_nothing(db: Database) -> None:
    project = await create_project(db)
    submission = await new_submission(db, project.id, project.version_id, None)
    failures = await insert_answers_at_once([db], submission.id, 200)
    assert failures == []  # such as "database is locked" on SQLite or a pool time-out
    assert await stored_answer_values(db, submission.id) == list(range(200))


@pytest.fixture
async def sqlite_db(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file of this test's own (the burst below is about SQLite's file lock)."""
    path = tmp_path / "burst.db"
    shutil.copy(sqlite_template, path)
    async with Database(f"sqlite+aiosqlite:///{path}") as database:
        yield database


async def test_two_engines_writing_to_one_sqlite_file_at_once_lose_nothing(sqlite_db: Database) -> None:
    # Two bot processes share one file: only SQLite's own lock (WAL, busy timeout) keeps them apart.
    project = await create_project(sqlite_db)
    submission = await new_submission(sqlite_db, project.id, project.version_id, None)
    async with Database(str(sqlite_db.url)) as second_process:
        failures = await insert_answers_at_once([sqlite_db, second_process], submission.id, 200)
    assert failures == []
    assert await stored_answer_values(sqlite_db, submission.id) == list(range(200))


# --- schema ------------------------------------------------------------------------------------------


def describe(difference: Any) -> str:
    """One of Alembic's differences, e.g. ('add_fk', ForeignKeyConstraint(...)), as readable text."""
    if isinstance(difference, list):
        return "; ".join(describe(d) for d in difference)
    kind, *details = difference
    return " ".join([kind, *(str(getattr(d, "name", d)) for d in details)])


def schema_differences(connection: Connection) -> list[str]:
    """What Alembic's autogenerate would add to a new migration: nothing when migrations match the models."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [describe(d) for d in compare_metadata(context, Base.metadata)]


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(schema_differences)
    finally:
        await engine.dispose()
    assert differences == []
