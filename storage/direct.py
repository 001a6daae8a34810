"""The statements of a resident's everyday update, run on the bare driver: claim the update, lock and read
the sender with their questionnaire, start one, read, save and delete answers, save tags, audit, and write
what changed.

They are the repository's own statements (storage.repository), compiled once by SQLAlchemy for the
database in use, with their values converted by the columns' own types, so what this path reads and
writes is exactly what the session would. Only the running is different: through the session, SQLAlchemy's
bookkeeping (the session, the connection and transaction objects, execution contexts, result objects,
the ORM's loading) cost the bot several times what the driver does on these statements, and they run on
nearly every update (`benchmarks/transaction.py`).

Rows come back as detached ORM objects, as a session would have loaded them; what the update changes on
them is written at the end (`write_changes`), as the session's flush would. Anything else raises
NeedsSession, and the engine handles the update again through the session.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, insert, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstanceState, class_mapper, make_transient_to_detached
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from storage import repository as repo
from storage.database import Database, DriverConnection
from storage.models import Answer, AuditEntry, Person, ProcessedUpdate, Submission, utcnow
from storage.repository import Step, StoredAnswer

Convert = Callable[[Any], Any] | None
T = TypeVar("T")


def _table(cls: type[Any]) -> Table:
    return cast(Table, cls.__table__)


_UPDATE_ID = _table(ProcessedUpdate).c.update_id


class NeedsSession(Exception):
    """The update needs more than this path offers (another statement, a change to write): it is rolled
    back and handled again through the session."""


def _converter(type_: TypeEngine[Any], dialect: Dialect, *, bind: bool) -> Convert:
    """What SQLAlchemy does to a value of this type on its way to the driver (`bind`) or back from it."""
    implementation = type_.dialect_impl(dialect)
    if bind:
        return implementation.bind_processor(dialect)
    return cast(Convert, implementation.result_processor(dialect, None))


class _Statement:
    """One statement as SQLAlchemy compiles it for a dialect: its SQL, and its parameters in order with
    the conversion each one's type makes (a datetime to UTC, a dict to JSON text, ...)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        defaults = compiled.params  # the values of literals SQLAlchemy made parameters of
        self._parameters: list[tuple[str, Any, Convert]] = [
            (name, defaults.get(name), _converter(compiled.binds[name].type, dialect, bind=True))
            for name in compiled.positiontup or ()
        ]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        arguments = []
        for name, default, convert in self._parameters:
            value = values.get(name, default)
            arguments.append(convert(value) if convert is not None else value)
        return arguments


class _Columns:
    """Turns a table's columns, as a statement returns them in the table's order, into a detached object."""

    def __init__(self, cls: type[Any], dialect: Dialect) -> None:
        table = _table(cls)
        self._manager = class_mapper(cls).class_manager
        self.width = len(table.columns)
        self._columns: list[tuple[str, Convert]] = [
            (column.key, _converter(column.type, dialect, bind=False)) for column in table.columns
        ]

    def load(self, row: Sequence[Any]) -> Any:
        """The object of a row as the driver returned it."""
        columns = zip(self._columns, row, strict=True)
        return self.detached({key: convert(value) if convert else value for (key, convert), value in columns})

    def detached(self, values: dict[str, Any]) -> Any:
        """The object with these attribute values (Python's, already converted), as if loaded."""
        # As the ORM's own loading does: a new instance, its attributes filled in without the events that
        # setting them one by one fires (five times the cost), then marked as loaded from its row.
        obj = self._manager.new_instance()
        obj.__dict__.update(values)
        make_transient_to_detached(obj)  # as if a session had loaded it, and then closed
        return obj


class _Statements:
    """Everything compiled for one database's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.postgresql = dialect.name == "postgresql"
        self._loaders: dict[type[Any], _Columns] = {}
        self.person = self.columns(Person)
        self.submission = self.columns(Submission)
        if self.postgresql:
            self.claim_and_sender = _Statement(repo.PG_CLAIM_AND_SENDER, dialect)
            self.save_answer = _Statement(repo.PG_SAVE_ANSWER_AND_STEP, dialect)
        else:
            self.claim = _Statement(repo.CLAIM["sqlite"].returning(_UPDATE_ID), dialect)
            self.sender = _Statement(repo.SENDER, dialect)
            self.save_answer = _Statement(repo.SAVE_ANSWER["sqlite"], dialect)
            self.save_step = _Statement(repo.SAVE_STEP, dialect)
        self.answers_of = _Statement(repo.ANSWERS_OF, dialect)
        self.latest_version_id = _Statement(repo.LATEST_VERSION_ID, dialect)
        self.answer_value = _converter(repo.ANSWERS_OF.selected_columns.value.type, dialect, bind=False)
        self.save_tags = _Statement(repo.SAVE_TAGS[dialect.name], dialect)
        audit = _table(AuditEntry)
        columns = ("at", "actor", "action", "target", "detail")
        entry: dict[str, Any] = {name: bindparam(name) for name in columns}
        self.audit = _Statement(insert(audit).values(entry), dialect)

    def columns(self, cls: type[Any]) -> _Columns:
        loader = self._loaders.get(cls)
        if loader is None:
            loader = self._loaders[cls] = _Columns(cls, self.dialect)
        return loader


@functools.lru_cache(maxsize=8)
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(dialect)


@functools.lru_cache(maxsize=64)
def _select_by(table: Table, column: str, dialect: Dialect, *, lock: bool = False) -> _Statement:
    """Every column of the rows whose `column` is the parameter "value", by id; `lock`: FOR UPDATE."""
    statement = select(table).where(table.c[column] == bindparam("value")).order_by(table.c.id)
    return _Statement(statement.with_for_update() if lock else statement, dialect)


def _values_for_insert(cls: type[Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A new row's values: those given, and each other column's default as the ORM would apply it (the
    id is the database's)."""
    values = {}
    for column in _table(cls).columns:
        if column.key == "id":
            continue
        if column.key in given:
            values[column.key] = given[column.key]
        elif column.default is None:
            values[column.key] = None
        else:
            default = cast(Any, column.default)
            values[column.key] = default.arg(None) if default.is_callable else default.arg
    return values


@functools.lru_cache(maxsize=16)
def _insert(table: Table, dialect: Dialect, conflict: str | None = None) -> _Statement:
    """INSERT of every column but the id, RETURNING the id; `conflict`: a unique column, where a row
    already there makes it insert nothing."""
    columns: dict[str, Any] = {c.key: bindparam(c.key) for c in table.columns if c.key != "id"}
    dialect_insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    statement: Any = dialect_insert(table).values(columns)
    if conflict is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[conflict])
    return _Statement(statement.returning(table.c.id), dialect)


class DirectTransaction:
    """One update's statements on the driver, inside `transaction()`."""

    def __init__(self, connection: DriverConnection, statements: _Statements) -> None:
        self.connection = connection
        self.statements = statements
        self.loaded: list[Any] = []  # every object read or created: what `write_changes` looks at
        self._identity: dict[tuple[type[Any], int], Any] = {}  # one object per row, as in a session

    async def _rows(self, statement: _Statement, values: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return await self.connection.rows(statement.sql, statement.arguments(values))

    async def claim_update_and_sender(
        self, update_id: int, telegram_id: int
    ) -> tuple[bool, Person | None, Submission | None]:
        """As `repository.claim_update_and_sender`: the update claimed (False: handled before, nothing
        else read), and the sender, row-locked on PostgreSQL, with the questionnaire they are in."""
        s = self.statements
        values = {"update_id": update_id, "processed_at": utcnow(), "telegram_id": telegram_id}
        if s.postgresql:
            row = (await self._rows(s.claim_and_sender, values))[0]
            if not row[0]:
                return False, None, None
            people = row[1 : 1 + s.person.width]
            mine = row[1 + s.person.width :]
        else:
            if not await self._rows(s.claim, values):
                return False, None, None
            found = await self._rows(s.sender, values)
            if not found:
                return True, None, None
            people, mine = found[0][: s.person.width], found[0][s.person.width :]
        if people[0] is None:
            return True, None, None
        person: Person = self._keep(s.person.load(people))
        if person.active_submission_id is None:
            return True, person, None
        if mine[0] is None:
            # Started by another process while the statement waited for the lock: only a new statement
            # would see it (repository._current_submission); rare enough to leave to the session.
            raise NeedsSession("the sender's questionnaire is newer than the statement")
        submission: Submission = self._keep(s.submission.load(mine))
        return True, person, submission

    async def answers_of(self, submission_id: int) -> dict[str, StoredAnswer]:
        """As `repository.answers_of`."""
        rows = await self._rows(self.statements.answers_of, {"submission_id": submission_id})
        convert = self.statements.answer_value
        return {
            code: StoredAnswer(answer_id, code, convert(value) if convert else value, seq, raw_text)
            for answer_id, code, value, seq, raw_text in rows
        }

    async def save_answer(
        self,
        submission: Submission,
        question_code: str,
        value: Any,
        *,
        raw_text: str,
        update_id: int | None,
        step: Step,
    ) -> StoredAnswer:
        """As `repository.save_answer`, with the step the answer moves the submission to."""
        parameters, written = repo.answer_parameters(
            submission, question_code, value, raw_text=raw_text, update_id=update_id, step=step
        )
        s = self.statements
        rows = await self._rows(s.save_answer, parameters)
        if not s.postgresql:
            await self._rows(s.save_step, parameters)
        return repo.answer_saved(submission, rows[0][0], parameters, written)

    async def save_tags(self, answer_id: int, *, redacted: str, urgent: bool, signals: list[str]) -> None:
        """As `repository.save_tags`."""
        parameters = repo.tags_parameters(answer_id, redacted, urgent, signals)
        await self._rows(self.statements.save_tags, parameters)

    async def delete_answers(self, submission_id: int, question_codes: Sequence[str]) -> None:
        """As `repository.delete_answers`, for the answers to these questions."""
        if question_codes:
            statement = _delete_answers(len(question_codes), self.statements.dialect)
            codes = {f"code_{index}": code for index, code in enumerate(question_codes)}
            await self._rows(statement, {"submission_id": submission_id, **codes})

    async def audit(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        """As `repository.audit`, written now rather than at commit."""
        values = {"at": utcnow(), "actor": actor, "action": action, "target": target, "detail": detail}
        await self._rows(self.statements.audit, values)

    def _keep(self, obj: T) -> T:
        """The object for its row: the one this transaction already has for it (which may hold changes
        not yet written), else this one, now kept."""
        key = (type(obj), cast(Any, obj).id)
        kept = self._identity.get(key)
        if kept is None:
            kept = self._identity[key] = obj
            self.loaded.append(obj)
        return cast(T, kept)

    def _load_all(self, cls: type[Any], rows: Sequence[Sequence[Any]]) -> list[Any]:
        columns = self.statements.columns(cls)
        return [self._keep(columns.load(row)) for row in rows]

    async def get(self, cls: type[T], id_: int) -> T | None:
        """As `AsyncSession.get`, for a class whose primary key is `id`."""
        rows = await self._rows(_select_by(_table(cls), "id", self.statements.dialect), {"value": id_})
        found = self._load_all(cls, rows)
        return found[0] if found else None

    async def latest_version_id(self, project_id: int) -> int | None:
        """As `repository.latest_version_id`."""
        rows = await self._rows(self.statements.latest_version_id, {"project_id": project_id})
        return int(rows[0][0]) if rows else None

    async def submissions_of_person(self, person_id: int) -> list[Submission]:
        """As `repository.submissions_of_person`."""
        rows = await self._rows(
            _select_by(_table(Submission), "person_id", self.statements.dialect), {"value": person_id}
        )
        return self._load_all(Submission, rows)

    async def ensure_person(self, telegram_id: int) -> Person:
        """As `repository.ensure_person`: found or created, safe when two processes create them at once."""
        dialect = self.statements.dialect
        given = {"telegram_id": telegram_id, "role": "resident", "display_name": "", "state": ""}
        await self._rows(_insert(_table(Person), dialect, "telegram_id"), _values_for_insert(Person, given))
        locked = _select_by(_table(Person), "telegram_id", dialect, lock=self.statements.postgresql)
        found = self._load_all(Person, await self._rows(locked, {"value": telegram_id}))
        return cast(Person, found[0])

    async def create_submission(self, **given: Any) -> Submission:
        """As `repository.create_submission`."""
        values = _values_for_insert(Submission, repo.new_submission_values(**given))
        rows = await self._rows(_insert(_table(Submission), self.statements.dialect), values)
        submission: Submission = self.statements.columns(Submission).detached({"id": rows[0][0], **values})
        return self._keep(submission)

    async def write_changes(self) -> None:
        """Write what the update changed on the objects read (the sender, their questionnaire), as the
        session's flush would: one UPDATE of the changed columns each, by primary key."""
        for obj in self.loaded:
            state = cast(InstanceState[Any], inspect(obj))
            if not state.modified:
                continue
            changed = {a.key: a.value for a in state.attrs if a.history.has_changes()}
            if not changed:
                continue  # set to the value it had
            statement = _update(_table(type(obj)), frozenset(changed), self.statements.dialect)
            await self._rows(statement, {**{f"new_{k}": v for k, v in changed.items()}, "id": obj.id})


@functools.lru_cache(maxsize=16)
def _delete_answers(count: int, dialect: Dialect) -> _Statement:
    table = _table(Answer)
    codes: list[Any] = [bindparam(f"code_{index}") for index in range(count)]
    statement = delete(table).where(
        table.c.submission_id == bindparam("submission_id"), table.c.question_code.in_(codes)
    )
    return _Statement(statement, dialect)


@functools.lru_cache(maxsize=64)
def _update(table: Table, columns: frozenset[str], dialect: Dialect) -> _Statement:
    statement = (
        update(table)
        .where(table.c.id == bindparam("id"))
        .values({name: bindparam(f"new_{name}") for name in sorted(columns)})
    )
    return _Statement(statement, dialect)


@contextlib.asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[DirectTransaction]:
    """A write transaction for one update, committed when the block ends without error and rolled back
    otherwise (after NeedsSession too)."""
    async with db.driver_transaction() as connection:
        yield DirectTransaction(connection, _statements(db.engine.dialect))
