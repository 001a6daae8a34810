"""Statements per update: a step of the questionnaire costs a fixed, small number of database statements.

Every statement is a round trip (PostgreSQL) or a hop to SQLite's thread, and under load they are most
of the bot's work; these counts are pinned so that a change that adds one is noticed. A resident's answer
runs on the driver (storage.direct), not through the session: that is pinned too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from bot import callbacks as cb
from bot import texts
from bot.engine import DialogEngine
from bot.messages import Incoming, Kind, Reply
from bot.tagging import ModelTags, QuickTags
from storage import database
from storage import repository as repo
from storage.database import Database
from tests.conftest import LINK_SECRET, Project, create_project, processed_update_ids

# Claim the update, read and lock the sender with their questionnaire, save the answer, move the
# questionnaire on. PostgreSQL does the first two in one statement and the last two in another.
STATEMENTS_PER_ANSWER = {"postgresql": 2, "sqlite": 4}


class QuietTagger:
    def quick(self, text: str) -> QuickTags:
        return QuickTags(False, (), text)

    def classify(self, text: str) -> ModelTags:
        return ModelTags(())


class Statements(list[str]):
    """The statements an update ran: through the session, and on the driver (each listed once)."""

    def __init__(self) -> None:
        super().__init__()
        self.session: list[str] = []
        self.driver: list[str] = []


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Any:
    @contextmanager
    def count(db: Database) -> Iterator[Statements]:
        statements = Statements()

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not statement.lstrip().upper().startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
                statements.session.append(statement)
                statements.append(statement)

        def counted(rows: Any) -> Any:
            async def run(self: Any, sql: str, arguments: Sequence[Any]) -> Any:
                statements.driver.append(sql)
                statements.append(sql)
                return await rows(self, sql, arguments)

            return run

        # Counted at the driver connections' one method, which still runs every statement.
        for driver in (database._Asyncpg, database._Sqlite):
            monkeypatch.setattr(driver, "rows", counted(driver.rows))
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            yield statements
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
            monkeypatch.undo()

    return count


class Resident:
    def __init__(self, engine: DialogEngine, user_id: int) -> None:
        self.engine = engine
        self.user_id = user_id
        self.update_id = user_id * 1000

    async def send(self, text: str) -> list[Reply]:
        return await self.handle(Kind.TEXT, text=text)

    async def tap(self, replies: list[Reply], label: str) -> list[Reply]:
        data = next(b.data for r in replies for row in r.buttons for b in row if b.text == label)
        return await self.handle(Kind.CALLBACK, callback_data=data, callback_id="q", message_id=7)

    async def handle(self, kind: Kind, **fields: Any) -> list[Reply]:
        self.update_id += 1
        incoming = Incoming(self.update_id, self.user_id, self.user_id, kind, **fields)
        return await self.engine.handle(incoming)


def questions(replies: list[Reply]) -> list[str]:
    return [r.text for r in replies if r.action == "send"]


def quiet_engine(db: Database) -> DialogEngine:
    return DialogEngine(db, link_secret=LINK_SECRET, tagger=QuietTagger())


async def started(db: Database, user_id: int) -> tuple[Project, Resident, list[Reply]]:
    """A project, and a resident who opened its start link; the replies hold the consent notice."""
    project = await create_project(db)
    resident = Resident(quiet_engine(db), user_id)
    return project, resident, await resident.send(project.start())


async def test_an_answer_costs_a_fixed_number_of_statements(db: Database, counting: Any) -> None:
    _, resident, replies = await started(db, 4242)
    replies = await resident.tap(replies, "同意")
    expected = STATEMENTS_PER_ANSWER[db.engine.dialect.name]

    with counting(db) as tapped:
        replies = await resident.tap(replies, "产权人")
    assert "补偿方案能接受吗" in questions(replies)[-1]
    assert len(tapped) == expected, "\n\n".join(tapped)
    assert tapped.session == [], "an answer runs on the driver, not through the session"

    with counting(db) as typed:
        replies = await resident.send("能接受")
    assert "工程有必要吗" in questions(replies)[-1]
    assert len(typed) == expected, "\n\n".join(typed)

    # Changing an earlier answer from /back costs the same: the same row is updated, nothing more.
    replies = await resident.send("/back")
    with counting(db) as changed:
        replies = await resident.tap(replies, "不能接受")
    assert "工程有必要吗" in questions(replies)[-1]
    assert len(changed) == expected, "\n\n".join(changed)

    # A grievance also stores its rule-based tags, in one more statement.
    replies = await resident.tap(replies, "2")
    replies = await resident.tap(replies, "不支持")
    assert "请说说您的理由" in questions(replies)[-1]
    with counting(db) as grievance:
        replies = await resident.send("补偿太低了")
    assert "施工期间担心什么" in questions(replies)[-1]
    assert len(grievance) == expected + 1, "\n\n".join(grievance)
    assert typed.session == changed.session == grievance.session == []


async def test_a_redelivered_update_costs_one_statement_and_changes_nothing(
    db: Database, counting: Any
) -> None:
    project, resident, replies = await started(db, 4343)
    again = Incoming(resident.update_id, resident.user_id, resident.user_id, Kind.TEXT, text=project.start())
    with counting(db) as statements:
        assert await resident.engine.handle(again) == []
    assert len(statements) == 1, "\n\n".join(statements)
    assert any(b.data.startswith(cb.CONSENT) for r in replies for row in r.buttons for b in row)


async def test_a_redelivered_answer_costs_one_statement_and_changes_nothing(
    db: Database, counting: Any
) -> None:
    _, resident, replies = await started(db, 4545)
    replies = await resident.tap(replies, "同意")
    data = next(b.data for r in replies for row in r.buttons for b in row if b.text == "产权人")
    await resident.tap(replies, "产权人")
    again = Incoming(
        resident.update_id,
        resident.user_id,
        resident.user_id,
        Kind.CALLBACK,
        callback_data=data,
        callback_id="q",
        message_id=7,
    )
    with counting(db) as statements:
        assert await resident.engine.handle(again) == []
    assert (len(statements), len(statements.driver)) == (1, 1), "\n\n".join(statements)


async def test_an_update_that_needs_the_session_is_handled_through_it_once(
    db: Database, counting: Any
) -> None:
    """A typed text is tried on the driver first; a project code typed by someone new needs the session
    (a questionnaire to start), so the driver's transaction is rolled back and the session's does it all."""
    project = await create_project(db)
    resident = Resident(quiet_engine(db), 4646)
    with counting(db) as statements:
        replies = await resident.send(project.code)
    assert any(b.data.startswith(cb.CONSENT) for r in replies for row in r.buttons for b in row)
    assert statements.driver and statements.session, "tried on the driver, then done through the session"
    async with db.reading() as session:
        person = await repo.person_by_telegram_id(session, resident.user_id)
        assert person is not None
        assert len(await repo.submissions_of_person(session, person.id)) == 1
    assert await processed_update_ids(db) == [resident.update_id]


async def test_answers_remembered_between_updates_never_hide_another_processs_answer(db: Database) -> None:
    """Two processes (two engines) take turns on one resident: what one remembers of the answers is
    dropped as soon as the other has saved one."""
    project = await create_project(db)
    first, second = quiet_engine(db), quiet_engine(db)
    resident = Resident(first, 4444)
    replies = await resident.send(project.start())
    replies = await resident.tap(replies, "同意")
    replies = await resident.tap(replies, "产权人")  # `first` now remembers one answer
    resident.engine = second
    replies = await resident.tap(replies, "不能接受")
    assert "工程有必要吗" in questions(replies)[-1]
    resident.engine = first
    replies = await resident.send("/back")
    assert "补偿方案能接受吗" in questions(replies)[-1]
    assert texts.PREVIOUS_ANSWER.format(answer="不能接受") in questions(replies)[-1]
    assert len(first.answers) == 1 and len(second.answers) == 1
