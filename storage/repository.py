"""Repository functions: every read and write the wings make; they flush, the caller commits."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, bindparam, delete, func, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import (
    Alert,
    Answer,
    AnswerTag,
    AuditEntry,
    Grid,
    Person,
    ProcessedUpdate,
    Project,
    QuestionnaireVersion,
    Setting,
    Submission,
    SubmissionStatus,
    utcnow,
)


class RepositoryError(Exception):
    """A request the data does not allow, with a reason fit for the user who made it."""


def _dialect(session: AsyncSession) -> str:
    """The database the session talks to, "postgresql" or "sqlite": some statements differ."""
    return session.get_bind().dialect.name


# --- projects and questionnaire versions -------------------------------------------------------------


async def project_by_code(session: AsyncSession, code: str) -> Project | None:
    result = await session.scalars(select(Project).where(Project.code == code))
    return result.first()


async def create_project(session: AsyncSession, code: str, title: str) -> Project:
    if await project_by_code(session, code) is not None:
        raise RepositoryError(f"project {code!r} already exists")
    project = Project(code=code, title=title)
    session.add(project)
    await session.flush()
    return project


async def publish_version(
    session: AsyncSession,
    project: Project,
    *,
    survey_id: str,
    version: int,
    title: str,
    source: str,
    content_hash: str,
) -> tuple[QuestionnaireVersion, bool]:
    """Publish a questionnaire version; returns (version, created).

    A published version never changes: publishing the same content again is a no-op, publishing other
    content under a version number already used is refused.
    """
    existing = (
        await session.scalars(
            select(QuestionnaireVersion).where(
                QuestionnaireVersion.project_id == project.id,
                QuestionnaireVersion.survey_id == survey_id,
                QuestionnaireVersion.version == version,
            )
        )
    ).first()
    if existing is not None:
        if existing.content_hash == content_hash:
            return existing, False
        raise RepositoryError(
            f"version {version} of {survey_id!r} is already published with other content; "
            f"published versions are immutable, so raise the version number"
        )
    latest = await latest_version(session, project.id)
    if latest is not None and latest.survey_id == survey_id and latest.version > version:
        raise RepositoryError(f"version {version} is older than the published version {latest.version}")
    row = QuestionnaireVersion(
        project_id=project.id,
        survey_id=survey_id,
        version=version,
        title=title,
        source=source,
        content_hash=content_hash,
    )
    session.add(row)
    await session.flush()
    return row, True


def _latest_version_statement(*columns: Any) -> Select[Any]:
    """The project's (parameter "project_id") most recently published questionnaire version: the one
    residents are asked now. One ordering for every reader, so all of them agree on which it is."""
    return (
        select(*columns)
        .where(QuestionnaireVersion.project_id == bindparam("project_id"))
        .order_by(QuestionnaireVersion.published_at.desc(), QuestionnaireVersion.id.desc())
        .limit(1)
    )


LATEST_VERSION_ID = _latest_version_statement(QuestionnaireVersion.id)
_LATEST_VERSION = _latest_version_statement(QuestionnaireVersion)


async def latest_version_id(session: AsyncSession, project_id: int) -> int | None:
    """The id of the project's questionnaire version now published (its source is not read)."""
    version_id: int | None = (await session.execute(LATEST_VERSION_ID, {"project_id": project_id})).scalar()
    return version_id


async def latest_version(session: AsyncSession, project_id: int) -> QuestionnaireVersion | None:
    return (await session.scalars(_LATEST_VERSION, {"project_id": project_id})).first()


async def version_by_id(session: AsyncSession, version_id: int) -> QuestionnaireVersion | None:
    return await session.get(QuestionnaireVersion, version_id)


# --- grids -------------------------------------------------------------------------------------------


async def upsert_grid(
    session: AsyncSession, project_id: int, code: str, name: str, community: str = "", households: int = 0
) -> Grid:
    grid = await grid_by_code(session, project_id, code)
    if grid is None:
        grid = Grid(project_id=project_id, code=code, name=name, community=community, households=households)
        session.add(grid)
    else:
        grid.name, grid.community, grid.households = name, community, households
    await session.flush()
    return grid


async def grid_by_code(session: AsyncSession, project_id: int, code: str) -> Grid | None:
    result = await session.scalars(select(Grid).where(Grid.project_id == project_id, Grid.code == code))
    return result.first()


async def grids_of(session: AsyncSession, project_id: int) -> Sequence[Grid]:
    return (
        await session.scalars(select(Grid).where(Grid.project_id == project_id).order_by(Grid.code))
    ).all()


async def find_typed_code(session: AsyncSession, typed: str) -> tuple[Project, Grid | None] | None:
    """Resolve what a resident typed: "PROJECT-GRID", "PROJECT GRID", a grid code alone or a project code.

    Case and the separator do not matter; a grid code that exists in several projects is ambiguous.
    """
    # Full-width letters and dashes from Chinese keyboards fold to ASCII; any run of spaces, dashes or
    # underscores is one separator.
    text = re.sub(r"[\s_\-－—–]+", "-", unicodedata.normalize("NFKC", typed).strip().upper()).strip("-")
    if not text:
        return None
    projects = (await session.scalars(select(Project))).all()
    for project in sorted(projects, key=lambda p: -len(p.code)):
        code = project.code.upper().replace("_", "-")
        if text == code:
            return project, None
        if text.startswith(code + "-"):
            rest = text[len(code) + 1 :]
            grids = await grids_of(session, project.id)
            grid = next((g for g in grids if g.code.upper().replace("_", "-") == rest), None)
            if grid is not None:
                return project, grid
    grids = (await session.scalars(select(Grid))).all()
    matches = [g for g in grids if g.code.upper().replace("_", "-") == text]
    if len(matches) == 1:
        project_row = await session.get(Project, matches[0].project_id)
        assert project_row is not None
        return project_row, matches[0]
    return None


# --- people ------------------------------------------------------------------------------------------


async def person_by_telegram_id(
    session: AsyncSession, telegram_id: int, *, lock: bool = False
) -> Person | None:
    """The person behind a Telegram account; `lock` holds their row until commit (PostgreSQL), which
    keeps one resident's updates in order across several bot processes."""
    query = select(Person).where(Person.telegram_id == telegram_id)
    if lock and _dialect(session) == "postgresql":
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def person_with_active_submission(
    session: AsyncSession, telegram_id: int
) -> tuple[Person | None, Submission | None]:
    """The person behind a Telegram account, their row locked until commit (PostgreSQL), and the
    submission they are in the middle of, in one statement: every update of the bot needs both, and
    the submission stays in the session, so `session.get` finds it without another query."""
    if _dialect(session) == "postgresql":
        row = (await session.execute(PG_SENDER, {"telegram_id": telegram_id})).one()
        person, submission = row[1], row[2]
    else:
        found = (await session.execute(SENDER, {"telegram_id": telegram_id})).first()
        person, submission = (found[0], found[1]) if found is not None else (None, None)
    return person, await _current_submission(session, person, submission)


# The statements every update runs are built once, with bound parameters: building a statement like these
# costs more than running it (SQLAlchemy derives its columns and its cache key each time). The bot runs
# them on the driver too (storage.direct), compiled from these same objects.


def _sender_statement(claim: Any = None) -> Any:
    """PostgreSQL: the person's row and their active submission's, both locked, in one statement, after
    the update's claim (a data-modifying CTE) when one is given; always exactly one row.

    Both rows are locked on purpose. Under READ COMMITTED a statement that waits for a row lock (another
    process handling the same person) gets the latest version of the rows it locks, but its snapshot of
    any other row is from before the wait: an unlocked submission could be one answer behind.
    """
    fresh = select(func.count()).select_from(claim).scalar_subquery() if claim is not None else None
    conditions = [Person.telegram_id == bindparam("telegram_id")]
    if fresh is not None:
        conditions.append(fresh >= 0)  # referring to the claim makes PostgreSQL run it before the lock
    locked = select(Person).where(*conditions).with_for_update().cte("me")
    active = (
        select(Submission)
        .join(locked, Submission.id == locked.c.active_submission_id)
        .with_for_update(of=Submission)
        .cte("mine")
    )
    # Exactly one row, whether the person exists or not, saying whether the update was claimed.
    one = select((fresh if fresh is not None else func.count()).label("fresh")).subquery("one")
    return (
        select(one.c.fresh, aliased(Person, locked), aliased(Submission, active))
        .select_from(one)
        .outerjoin(locked, true())
        .outerjoin(active, true())
    )


_UPDATES = cast(Table, ProcessedUpdate.__table__)
CLAIM = {
    "postgresql": pg_insert(_UPDATES)
    .values(update_id=bindparam("update_id"), processed_at=bindparam("processed_at"))
    .on_conflict_do_nothing(index_elements=["update_id"]),
    "sqlite": sqlite_insert(_UPDATES)
    .values(update_id=bindparam("update_id"), processed_at=bindparam("processed_at"))
    .on_conflict_do_nothing(index_elements=["update_id"]),
}
PG_SENDER = _sender_statement()
PG_CLAIM_AND_SENDER = _sender_statement(CLAIM["postgresql"].returning(_UPDATES.c.update_id).cte("claimed"))
# SQLite: the transaction took the database's write lock at BEGIN, so what it reads is current.
SENDER = (
    select(Person, Submission)
    .outerjoin(Submission, Submission.id == Person.active_submission_id)
    .where(Person.telegram_id == bindparam("telegram_id"))
)


async def _current_submission(
    session: AsyncSession, person: Person | None, submission: Submission | None
) -> Submission | None:
    if person is None or person.active_submission_id is None:
        return None
    if submission is None:
        # Started by another process while this statement waited for the person's lock: too new for
        # the statement's snapshot; a new statement sees it.
        submission = await session.get(Submission, person.active_submission_id)
    return submission


async def ensure_person(session: AsyncSession, telegram_id: int) -> Person:
    """Find or create the person, safe when two processes create the same one at once."""
    dialect = _dialect(session)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Person).values(telegram_id=telegram_id, role="resident", display_name="", state="")
    await session.execute(statement.on_conflict_do_nothing(index_elements=["telegram_id"]))
    person = await person_by_telegram_id(session, telegram_id, lock=True)
    assert person is not None
    return person


# --- updates -----------------------------------------------------------------------------------------


async def claim_update_and_sender(
    session: AsyncSession, update_id: int, telegram_id: int
) -> tuple[bool, Person | None, Submission | None]:
    """What every update of the bot begins with: claim the update (False: handled before, nothing else
    is read) and read its sender, row-locked, with the questionnaire they are in.

    On PostgreSQL this is one round trip instead of two: the claim is a data-modifying CTE that the
    lock waits for, so the order is the same as with two statements (claim, then lock).
    """
    if _dialect(session) != "postgresql":
        if not await claim_update(session, update_id):
            return False, None, None
        person, submission = await person_with_active_submission(session, telegram_id)
        return True, person, submission
    parameters = {"update_id": update_id, "processed_at": utcnow(), "telegram_id": telegram_id}
    fresh, person, submission = (await session.execute(PG_CLAIM_AND_SENDER, parameters)).one()
    if not fresh:
        return False, None, None
    return True, person, await _current_submission(session, person, submission)


async def claim_update(session: AsyncSession, update_id: int) -> bool:
    """Record an update as handled; False when it was handled before (a redelivery)."""
    # A Core statement (built on the table, not the mapped class): the session runs it without ORM
    # statement handling and without autoflush.
    parameters = {"update_id": update_id, "processed_at": utcnow()}
    result = await session.execute(CLAIM[_dialect(session)], parameters)
    return bool(cast(CursorResult[Any], result).rowcount == 1)


# --- submissions and answers -------------------------------------------------------------------------

_RECEIPT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I: receipts are read aloud


def new_receipt() -> str:
    chars = "".join(secrets.choice(_RECEIPT_ALPHABET) for _ in range(8))
    return f"MY-{chars[:4]}-{chars[4:]}"


async def create_submission(session: AsyncSession, **given: Any) -> Submission:
    """A new questionnaire at its consent step; `given` as `new_submission_values` takes it."""
    submission = Submission(**new_submission_values(**given))
    session.add(submission)
    await session.flush()
    return submission


def new_submission_values(
    *,
    project_id: int,
    version_id: int,
    grid_id: int | None,
    person_id: int | None,
    channel: str,
    entered_by_id: int | None = None,
    referrer_id: int | None = None,
) -> dict[str, Any]:
    """A new questionnaire's columns, at its consent step (`create_submission`)."""
    return {
        "receipt": new_receipt(),
        "project_id": project_id,
        "questionnaire_version_id": version_id,
        "grid_id": grid_id,
        "person_id": person_id,
        "channel": channel,
        "entered_by_id": entered_by_id,
        "referrer_id": referrer_id,
        "status": SubmissionStatus.IN_PROGRESS,
        "current_step": "consent",
        "draft": {},
    }


async def submissions_of_person(session: AsyncSession, person_id: int) -> Sequence[Submission]:
    query = select(Submission).where(Submission.person_id == person_id).order_by(Submission.id)
    return (await session.scalars(query)).all()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """One stored answer as the dialog needs it; `value` is the stored {"v": value} wrapper."""

    id: int
    question_code: str
    value: dict[str, Any]
    seq: int
    raw_text: str = ""


_ANSWER_TABLE = cast(Table, Answer.__table__)
_ANSWERS = _ANSWER_TABLE.c
ANSWERS_OF = (
    select(_ANSWERS.id, _ANSWERS.question_code, _ANSWERS.value, _ANSWERS.seq, _ANSWERS.raw_text)
    .where(_ANSWERS.submission_id == bindparam("submission_id"))
    .order_by(_ANSWERS.seq)
)


_ANSWER_FIELDS = ("value", "raw_text", "seq", "answered_at", "update_id")


def _answer_upsert(insert: Any) -> Any:
    statement = insert(_ANSWER_TABLE).values(
        {name: bindparam(name) for name in ("submission_id", "question_code", *_ANSWER_FIELDS)}
    )
    return statement.on_conflict_do_update(
        index_elements=["submission_id", "question_code"],
        set_={name: statement.excluded[name] for name in _ANSWER_FIELDS},
    ).returning(_ANSWERS.id)


SAVE_ANSWER = {"postgresql": _answer_upsert(pg_insert), "sqlite": _answer_upsert(sqlite_insert)}
_SUBMISSIONS = cast(Table, Submission.__table__).c
_STEP_FIELDS = ("answer_count", "updated_at", "current_step", "draft", "editing")
SAVE_STEP = (
    update(cast(Table, Submission.__table__))
    .where(_SUBMISSIONS.id == bindparam("submission_id"))
    .values({name: bindparam(f"new_{name}") for name in _STEP_FIELDS})
)
# PostgreSQL: the answer (a data-modifying CTE) and the submission's new step in one statement.
_SAVED = SAVE_ANSWER["postgresql"].cte("saved")
PG_SAVE_ANSWER_AND_STEP = SAVE_STEP.add_cte(_SAVED).returning(select(_SAVED.c.id).scalar_subquery())


async def answers_of(session: AsyncSession, submission_id: int) -> dict[str, StoredAnswer]:
    """A submission's answers by question, in the order they were given (`seq`)."""
    # Plain Core rows: a dialog step needs them all, and ORM objects (identity map, change tracking)
    # cost several times more to build than these rows.
    rows = await session.execute(ANSWERS_OF, {"submission_id": submission_id})
    return {row.question_code: StoredAnswer(*row) for row in rows}


class Step(NamedTuple):
    """Where a submission stands in its questionnaire: "consent", a question id or "summary", with the
    unfinished input of that step and whether the resident is changing one answer from the summary."""

    current_step: str
    draft: dict[str, Any]
    editing: bool


async def save_answer(
    session: AsyncSession,
    submission: Submission,
    question_code: str,
    value: Any,
    *,
    raw_text: str = "",
    update_id: int | None = None,
    existing: StoredAnswer | None = None,
    step: Step | None = None,
) -> StoredAnswer:
    """Store the answer to one question, replacing an earlier answer to the same question.

    One INSERT ... ON CONFLICT DO UPDATE, which keeps the row (and its id, which tags refer to) when the
    question was answered before; `existing` is accepted for callers that have it but not needed.
    `step`: the step the answer moves the submission to, written now too (in the same statement on
    PostgreSQL) instead of by the session at commit, which then has nothing of it left to write.
    """
    del existing
    parameters, written = answer_parameters(
        submission, question_code, value, raw_text=raw_text, update_id=update_id, step=step
    )
    dialect = _dialect(session)
    if step is None:
        answer_id = (await session.execute(SAVE_ANSWER[dialect], parameters)).scalar_one()
        for name, v in written.items():
            setattr(submission, name, v)  # the session writes it at commit, with the step it moves to
        return StoredAnswer(answer_id, question_code, {"v": value}, parameters["seq"], raw_text)
    if dialect == "postgresql":
        answer_id = (await session.execute(PG_SAVE_ANSWER_AND_STEP, parameters)).scalar_one()
    else:
        answer_id = (await session.execute(SAVE_ANSWER[dialect], parameters)).scalar_one()
        await session.execute(SAVE_STEP, parameters)
    return answer_saved(submission, answer_id, parameters, written)


def answer_parameters(
    submission: Submission,
    question_code: str,
    value: Any,
    *,
    raw_text: str,
    update_id: int | None,
    step: Step | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statement parameters of `save_answer`, and the submission's columns it changes."""
    now = utcnow()
    seq = submission.answer_count + 1
    parameters = {
        "submission_id": submission.id,
        "question_code": question_code,
        "value": {"v": value},
        "raw_text": raw_text,
        "seq": seq,
        "answered_at": now,
        "update_id": update_id,
    }
    written: dict[str, Any] = {"answer_count": seq, "updated_at": now}
    if step is not None:
        written.update(step._asdict())
        parameters.update({f"new_{name}": v for name, v in written.items()})
    return parameters, written


def answer_saved(
    submission: Submission, answer_id: int, parameters: dict[str, Any], written: dict[str, Any]
) -> StoredAnswer:
    """After the answer and its step were written: the submission as written (no change left for the
    session to flush) and the answer as the dialog keeps it."""
    for name, v in written.items():
        set_committed_value(submission, name, v)
    return StoredAnswer(
        answer_id, parameters["question_code"], parameters["value"], parameters["seq"], parameters["raw_text"]
    )


async def delete_answers(
    session: AsyncSession, submission_id: int, question_codes: Sequence[str] | None = None
) -> None:
    """Delete a submission's answers: all of them, or those to `question_codes` (none: no statement)."""
    if question_codes is not None and not question_codes:
        return
    statement = delete(Answer).where(Answer.submission_id == submission_id)
    if question_codes is not None:
        statement = statement.where(Answer.question_code.in_(question_codes))
    await session.execute(statement)


_TAG_TABLE = cast(Table, AnswerTag.__table__)
_TAG_FIELDS = ("redacted", "urgent", "signals", "categories", "scores", "uncertain", "model", "tagged_at")


def _tags_upsert(insert: Any) -> Any:
    statement = insert(_TAG_TABLE).values({name: bindparam(name) for name in ("answer_id", *_TAG_FIELDS)})
    return statement.on_conflict_do_update(
        index_elements=["answer_id"], set_={name: statement.excluded[name] for name in _TAG_FIELDS}
    )


SAVE_TAGS = {"postgresql": _tags_upsert(pg_insert), "sqlite": _tags_upsert(sqlite_insert)}


async def save_tags(
    session: AsyncSession, answer_id: int, *, redacted: str, urgent: bool, signals: list[str]
) -> None:
    """The rule-based tags of an answer; any earlier classification of it is cleared (the text changed).
    One upsert in the answer's transaction: it is written with the answer, before the reply."""
    await session.execute(SAVE_TAGS[_dialect(session)], tags_parameters(answer_id, redacted, urgent, signals))


def tags_parameters(answer_id: int, redacted: str, urgent: bool, signals: list[str]) -> dict[str, Any]:
    """The parameters of `save_tags`: the rules' findings, and no classification yet."""
    return {
        "answer_id": answer_id,
        "redacted": redacted,
        "urgent": urgent,
        "signals": signals,
        "categories": None,
        "scores": None,
        "uncertain": None,
        "model": "",
        "tagged_at": None,
    }


def queue_alert(
    session: AsyncSession, answer_id: int, submission: Submission, *, signals: list[str], redacted: str
) -> None:
    session.add(
        Alert(
            answer_id=answer_id,
            submission_id=submission.id,
            project_id=submission.project_id,
            grid_id=submission.grid_id,
            signals=signals,
            redacted=redacted,
        )
    )


# --- audit and settings ------------------------------------------------------------------------------


def audit(session: AsyncSession, actor: str, action: str, target: str = "", **detail: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target, detail=detail))


async def get_or_create_setting(session: AsyncSession, key: str, make: Any) -> str:
    row = await session.get(Setting, key)
    if row is None:
        row = Setting(key=key, value=make())
        session.add(row)
        await session.flush()
    return row.value


# --- reports -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    """One submission as exports show it: who (pseudonymous), where, how, when, and every answer."""

    receipt: str
    status: str
    channel: str
    survey_id: str
    version: int
    grid_code: str
    grid_name: str
    anonymous: bool
    proxy: bool
    started_at: datetime
    submitted_at: datetime | None
    answers: dict[str, Any]


async def submission_rows(session: AsyncSession, project_id: int) -> list[SubmissionRow]:
    query = (
        select(Submission, QuestionnaireVersion, Grid)
        .join(QuestionnaireVersion, Submission.questionnaire_version_id == QuestionnaireVersion.id)
        .outerjoin(Grid, Submission.grid_id == Grid.id)
        .where(Submission.project_id == project_id, Submission.current_step != "consent")
        .order_by(Submission.id)
    )
    rows = (await session.execute(query)).all()
    answers: dict[int, dict[str, Any]] = {}
    ids = [s.id for s, _, _ in rows]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for answer in await session.scalars(select(Answer).where(Answer.submission_id.in_(chunk))):
            answers.setdefault(answer.submission_id, {})[answer.question_code] = answer.value.get("v")
    return [
        SubmissionRow(
            receipt=s.receipt,
            status=s.status,
            channel=s.channel,
            survey_id=v.survey_id,
            version=v.version,
            grid_code=g.code if g else "",
            grid_name=g.name if g else "",
            anonymous=s.anonymous,
            proxy=s.entered_by_id is not None,
            started_at=s.started_at,
            submitted_at=s.submitted_at,
            answers=answers.get(s.id, {}),
        )
        for s, v, g in rows
    ]


async def count_by_status(session: AsyncSession, project_id: int) -> dict[tuple[str, str], int]:
    """(grid code, status) → number of submissions that got past consent."""
    query = (
        select(Grid.code, Submission.status, func.count())
        .select_from(Submission)
        .outerjoin(Grid, Submission.grid_id == Grid.id)
        .where(Submission.project_id == project_id, Submission.current_step != "consent")
        .group_by(Grid.code, Submission.status)
    )
    return {(code or "", status): n for code, status, n in (await session.execute(query)).all()}
