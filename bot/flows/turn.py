"""Turn: what a flow function gets for one update — the transaction, the update, the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Incoming
from storage import repository as repo
from storage.direct import DirectTransaction, NeedsSession

T = TypeVar("T")

if TYPE_CHECKING:
    from bot.engine import DialogEngine
    from storage.models import Person, Submission
    from storage.repository import Step, StoredAnswer


@dataclass(slots=True)
class Turn:
    # The update's transaction: a session, or (None) the driver's statements in `direct`, which carry
    # the resident's everyday answers; a flow that needs the session there makes the engine handle the
    # update again with one (NeedsSession).
    orm: AsyncSession | None
    incoming: Incoming
    engine: DialogEngine
    # The sender's questionnaire in progress as the update's first statement read it (row-locked), so
    # finding it again costs no trip through the session.
    loaded: Submission | None = None
    # Work that must wait until this update's transaction is committed (e.g. classifying an answer).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Each submission's answers, read once per update: several steps of one update need them.
    answers: dict[int, dict[str, StoredAnswer]] = field(default_factory=dict)
    direct: DirectTransaction | None = None

    @property
    def session(self) -> AsyncSession:
        if self.orm is None:
            raise NeedsSession("this step reads or writes through the session")
        return self.orm

    @property
    def chat_id(self) -> int:
        return self.incoming.chat_id

    # What the resident's dialog reads and writes, which the driver runs when the update has no session.

    async def get(self, cls: type[T], id_: int) -> T | None:
        if self.direct is not None:
            return await self.direct.get(cls, id_)
        return await self.session.get(cls, id_)

    async def latest_version_id(self, project_id: int) -> int | None:
        if self.direct is not None:
            return await self.direct.latest_version_id(project_id)
        return await repo.latest_version_id(self.session, project_id)

    async def submissions_of_person(self, person_id: int) -> list[Submission]:
        if self.direct is not None:
            return await self.direct.submissions_of_person(person_id)
        return list(await repo.submissions_of_person(self.session, person_id))

    async def ensure_person(self, telegram_id: int) -> Person:
        if self.direct is not None:
            return await self.direct.ensure_person(telegram_id)
        return await repo.ensure_person(self.session, telegram_id)

    async def create_submission(self, **values: Any) -> Submission:
        if self.direct is not None:
            return await self.direct.create_submission(**values)
        return await repo.create_submission(self.session, **values)

    async def answers_of(self, submission_id: int) -> dict[str, StoredAnswer]:
        if self.direct is not None:
            return await self.direct.answers_of(submission_id)
        return await repo.answers_of(self.session, submission_id)

    async def save_answer(
        self, submission: Submission, question_code: str, value: Any, *, raw_text: str, step: Step
    ) -> StoredAnswer:
        update_id = self.incoming.update_id
        if self.direct is not None:
            return await self.direct.save_answer(
                submission, question_code, value, raw_text=raw_text, update_id=update_id, step=step
            )
        return await repo.save_answer(
            self.session, submission, question_code, value, raw_text=raw_text, update_id=update_id, step=step
        )

    async def delete_answers(self, submission_id: int, question_codes: Sequence[str]) -> None:
        if self.direct is not None:
            await self.direct.delete_answers(submission_id, question_codes)
        else:
            await repo.delete_answers(self.session, submission_id, question_codes)

    async def audit(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        if self.direct is not None:
            await self.direct.audit(actor, action, target, **detail)
        else:
            repo.audit(self.session, actor, action, target, **detail)

    async def save_tags(self, answer_id: int, *, redacted: str, urgent: bool, signals: list[str]) -> None:
        if self.direct is not None:
            await self.direct.save_tags(answer_id, redacted=redacted, urgent=urgent, signals=signals)
        else:
            await repo.save_tags(self.session, answer_id, redacted=redacted, urgent=urgent, signals=signals)
