"""storage.direct and Database.driver_transaction: the driver's statements read and write exactly what the
session's do, and a failed, cancelled or cut transaction leaves nothing behind, not even a bad connection."""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text

from storage import direct
from storage import repository as repo
from storage.database import Database, is_transient
from storage.models import Channel, Grid, Person, Submission, utcnow
from tests.conftest import create_project, processed_update_ids


async def resident_in_progress(db: Database, telegram_id: int) -> int:
    """A resident half-way through a questionnaire, with values of every kind set; their submission's id."""
    project = await create_project(db, code=f"P{telegram_id}")
    async with db.transaction() as session:
        person = await repo.ensure_person(session, telegram_id)
        person.display_name = "王阿姨"
        submission = await repo.create_submission(
            session,
            project_id=project.id,
            version_id=project.version_id,
            grid_id=project.grid_ids["G01"],
            person_id=person.id,
            channel=Channel.TELEGRAM,
        )
        submission.draft = {"selected": ["噪音", "b"]}
        submission.current_step = "concerns"
        submission.anonymous = True
        submission.consent_at = utcnow()
        person.active_submission_id = submission.id
        return submission.id


def columns(obj: Person | Submission) -> dict[str, Any]:
    return {column.key: getattr(obj, column.key) for column in cast(Table, type(obj).__table__).columns}


async def stored(db: Database, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    """Rows as the database holds them (cast to text by the query), to compare what two paths wrote."""
    async with db.reading() as session:
        return [tuple(row) for row in await session.execute(text(sql), parameters)]


def shape(value: str) -> str:
    """A stored text with its digits blanked: two timestamps written a moment apart have the same shape."""
    return re.sub(r"\d", "0", value)


async def test_the_sender_is_read_as_the_session_reads_it(db: Database) -> None:
    await resident_in_progress(db, 501)
    async with direct.transaction(db) as transaction:
        claimed, person, submission = await transaction.claim_update_and_sender(1, 501)
    async with db.transaction() as session:
        _, orm_person, orm_submission = await repo.claim_update_and_sender(session, 2, 501)
    assert claimed and person is not None and submission is not None
    assert orm_person is not None and orm_submission is not None
    assert columns(person) == columns(orm_person)
    assert columns(submission) == columns(orm_submission)
    assert submission.draft == {"selected": ["噪音", "b"]}
    assert submission.consent_at is not None and submission.consent_at.tzinfo is not None

    async with direct.transaction(db) as transaction:
        assert await transaction.claim_update_and_sender(1, 501) == (False, None, None)  # handled before
        assert await transaction.claim_update_and_sender(3, 999) == (True, None, None)  # nobody yet
    assert await processed_update_ids(db) == [1, 2, 3]


async def test_an_answer_and_its_tags_are_stored_as_the_session_stores_them(db: Database) -> None:
    ids = [await resident_in_progress(db, telegram_id) for telegram_id in (502, 503)]
    step = repo.Step("next", {"selected": []}, False)
    said = '补偿太低 "了"'
    async with direct.transaction(db) as transaction:
        _, _, submission = await transaction.claim_update_and_sender(11, 502)
        assert submission is not None
        answer = await transaction.save_answer(
            submission, "reasons", said, raw_text="补偿太低", update_id=11, step=step
        )
        await transaction.save_tags(answer.id, redacted="补偿太低", urgent=False, signals=["拆迁"])
    async with db.transaction() as session:
        _, _, orm_submission = await repo.claim_update_and_sender(session, 12, 503)
        assert orm_submission is not None
        orm_answer = await repo.save_answer(
            session, orm_submission, "reasons", said, raw_text="补偿太低", update_id=12, step=step
        )
        await repo.save_tags(session, orm_answer.id, redacted="补偿太低", urgent=False, signals=["拆迁"])
    assert (answer.value, answer.seq) == (orm_answer.value, orm_answer.seq) == ({"v": said}, 1)
    for key in ("current_step", "draft", "editing", "answer_count"):  # as the objects say after writing
        assert getattr(submission, key) == getattr(orm_submission, key), key

    answers = await stored(
        db,
        "SELECT CAST(a.value AS TEXT), a.raw_text, a.seq, CAST(a.answered_at AS TEXT), a.update_id,"
        " CAST(t.signals AS TEXT), CAST(t.categories AS TEXT), t.categories IS NULL, t.urgent,"
        " CAST(s.draft AS TEXT), s.current_step, s.editing, s.answer_count, CAST(s.updated_at AS TEXT)"
        " FROM answers a JOIN answer_tags t ON t.answer_id = a.id"
        " JOIN submissions s ON s.id = a.submission_id"
        " WHERE a.submission_id IN (:first, :second) ORDER BY a.submission_id",
        first=ids[0],
        second=ids[1],
    )
    direct_row, session_row = answers
    blank = (3, 4, 13)  # the time written and the update's id differ; compared by shape below
    assert [v for i, v in enumerate(direct_row) if i not in blank] == [
        v for i, v in enumerate(session_row) if i not in blank
    ]
    if db.is_sqlite:  # a timestamp is text there, in SQLAlchemy's format (PostgreSQL has a type for it)
        assert shape(direct_row[3]) == shape(session_row[3])
        assert shape(direct_row[13]) == shape(session_row[13])
    assert (direct_row[4], session_row[4]) == (11, 12)


async def test_what_the_update_changed_is_written_as_a_flush_would(db: Database) -> None:
    submission_id = await resident_in_progress(db, 504)
    async with direct.transaction(db) as transaction:
        _, person, submission = await transaction.claim_update_and_sender(21, 504)
        assert person is not None and submission is not None
        submission.draft = {"selected": ["c"]}
        submission.editing = True
        person.blocked_bot = True
        person.state = person.state  # set, but to the value it had: nothing to write
        await transaction.write_changes()
    async with db.reading() as session:
        fresh = await session.get(Submission, submission_id)
        fresh_person = await session.get(Person, person.id)
        assert fresh is not None and fresh_person is not None
        assert (fresh.draft, fresh.editing, fresh.current_step) == ({"selected": ["c"]}, True, "concerns")
        assert fresh_person.blocked_bot and fresh_person.display_name == "王阿姨"


async def test_a_resident_and_questionnaire_created_are_what_the_session_creates(db: Database) -> None:
    project = await create_project(db)
    started: dict[str, Any] = {
        "project_id": project.id,
        "version_id": project.version_id,
        "grid_id": project.grid_ids["G01"],
        "channel": Channel.TELEGRAM,
        "referrer_id": None,
    }
    async with direct.transaction(db) as transaction:
        assert await transaction.latest_version_id(project.id) == project.version_id
        grid = await transaction.get(Grid, project.grid_ids["G01"])
        assert grid is not None and grid.code == "G01" and await transaction.get(Grid, 10**6) is None
        person = await transaction.ensure_person(601)
        assert (await transaction.ensure_person(601)).id == person.id  # found, not created twice
        submission = await transaction.create_submission(person_id=person.id, **started)
        person.active_submission_id = submission.id
        await transaction.write_changes()
        # One object per row, as in a session: a change made to it is not lost to a copy read later.
        assert await transaction.submissions_of_person(person.id) == [submission]
        assert await transaction.get(Person, person.id) is person
    async with db.transaction() as session:
        orm_person = await repo.ensure_person(session, 602)
        orm_submission = await repo.create_submission(session, person_id=orm_person.id, **started)
        orm_person.active_submission_id = orm_submission.id
    async with db.reading() as session:
        people = {p.telegram_id: columns(p) for p in await session.scalars(select(Person))}
        made = {s.person_id: columns(s) for s in await session.scalars(select(Submission))}
    differ = {"id", "telegram_id", "created_at", "receipt", "person_id", "active_submission_id", "started_at"}
    assert {k: v for k, v in people[601].items() if k not in differ} == {
        k: v for k, v in people[602].items() if k not in differ
    }
    assert people[601]["active_submission_id"] == submission.id
    differ |= {"updated_at"}
    assert {k: v for k, v in made[person.id].items() if k not in differ} == {
        k: v for k, v in made[orm_person.id].items() if k not in differ
    }
    assert columns(submission) == made[person.id]  # the object is what was written


async def test_a_block_that_raises_leaves_nothing_and_gives_the_connection_back(db: Database) -> None:
    await resident_in_progress(db, 505)
    with pytest.raises(direct.NeedsSession):
        async with direct.transaction(db) as transaction:
            await transaction.claim_update_and_sender(31, 505)
            raise direct.NeedsSession("for the test")
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await processed_update_ids(db) == []
    async with direct.transaction(db) as transaction:  # the same update, handled again
        assert (await transaction.claim_update_and_sender(31, 505))[0]
    assert await processed_update_ids(db) == [31]


async def test_a_cancelled_update_gives_its_connection_back(db: Database) -> None:
    await resident_in_progress(db, 506)
    started = asyncio.Event()
    # PostgreSQL: cancelled while a statement runs, so the connection is left mid-statement.
    slow = "SELECT pg_sleep(30)" if not db.is_sqlite else None

    async def update() -> None:
        async with direct.transaction(db) as transaction:
            await transaction.claim_update_and_sender(41, 506)
            started.set()
            if slow:
                await transaction.connection.rows(slow, [])
            await asyncio.sleep(30)

    task = asyncio.create_task(update())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await processed_update_ids(db) == []
    for update_id in (42, 43):  # whatever connection the pool hands out now works, on either path
        async with direct.transaction(db) as transaction:
            assert (await transaction.claim_update_and_sender(update_id, 506))[0]
        async with db.transaction() as session:
            assert (await repo.claim_update_and_sender(session, update_id + 10, 506))[0]


@pytest.mark.postgres
async def test_a_connection_cut_by_postgresql_is_retried_and_not_handed_out_again(
    postgres_database: str,
) -> None:
    db = Database(postgres_database, pool_size=1, max_overflow=0, pre_ping=False)  # one connection, reused
    try:
        await resident_in_progress(db, 507)

        async def cut_the_pooled_connection() -> None:
            async with direct.transaction(db) as transaction:
                pid = (await transaction.connection.rows("SELECT pg_backend_pid()", []))[0][0]
            async with db.reading() as session:  # another connection of the server's, not the pool's
                await session.execute(text("SELECT 1"))
            admin = Database(postgres_database)
            async with admin.transaction() as session:
                await session.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            await admin.dispose()

        # Cut while idle in the pool: BEGIN fails on it.
        await cut_the_pooled_connection()
        with pytest.raises(Exception) as raised:
            async with direct.transaction(db) as transaction:
                await transaction.claim_update_and_sender(151, 507)
        assert is_transient(raised.value), repr(raised.value)
        # The pool opened a new connection in its place: both paths work again.
        async with db.transaction() as session:
            assert (await repo.claim_update_and_sender(session, 152, 507))[0]
        async with direct.transaction(db) as transaction:
            assert (await transaction.claim_update_and_sender(153, 507))[0]

        # Cut in the middle of a transaction: the next statement fails, and nothing of it stays.
        with pytest.raises(Exception) as raised:
            async with direct.transaction(db) as transaction:
                await transaction.claim_update_and_sender(154, 507)
                pid = (await transaction.connection.rows("SELECT pg_backend_pid()", []))[0][0]
                admin = Database(postgres_database)
                async with admin.transaction() as session:
                    await session.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
                await admin.dispose()
                await transaction.claim_update_and_sender(155, 507)
        assert is_transient(raised.value), repr(raised.value)
        async with direct.transaction(db) as transaction:
            assert (await transaction.claim_update_and_sender(154, 507))[0]
        # (The database is shared with other tests of the module: only these ids are looked at.)
        remembered = set(await processed_update_ids(db)) & {151, 152, 153, 154, 155}
        assert remembered == {152, 153, 154}
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_after_one_cut_connection_the_pool_replaces_the_others_the_restart_cut(
    postgres_database: str,
) -> None:
    """A restart cuts every pooled connection; the first update to find its connection cut costs one
    retry, not one per connection in the pool."""
    db = Database(postgres_database, pool_size=3, max_overflow=0, pre_ping=False)
    try:
        await resident_in_progress(db, 508)
        await db.open_connections(3)
        pids: list[int] = []

        async def note_pid() -> None:
            async with direct.transaction(db) as transaction:
                pids.append((await transaction.connection.rows("SELECT pg_backend_pid()", []))[0][0])
                await asyncio.sleep(0.1)  # held, so the three use three connections

        await asyncio.gather(*(note_pid() for _ in range(3)))
        assert len(set(pids)) == 3
        admin = Database(postgres_database)
        async with admin.transaction() as session:
            for pid in pids:
                await session.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await admin.dispose()

        with pytest.raises(Exception) as raised:
            async with direct.transaction(db) as transaction:
                await transaction.claim_update_and_sender(161, 508)
        assert is_transient(raised.value), repr(raised.value)
        for update_id in (162, 163):  # the other two cut connections are not handed out
            async with direct.transaction(db) as transaction:
                assert (await transaction.claim_update_and_sender(update_id, 508))[0]
    finally:
        await db.dispose()
