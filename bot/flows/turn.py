"""Turn: what a flow function gets for one update — the transaction, the update, the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Incoming

if TYPE_CHECKING:
    from bot.engine import DialogEngine
    from storage.models import Submission
    from storage.repository import StoredAnswer


@dataclass(slots=True)
class Turn:
    session: AsyncSession
    incoming: Incoming
    engine: DialogEngine
    # The sender's questionnaire in progress as the update's first statement read it (row-locked), so
    # finding it again costs no trip through the session.
    loaded: Submission | None = None
    # Work that must wait until this update's transaction is committed (e.g. classifying an answer).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Each submission's answers, read once per update: several steps of one update need them.
    answers: dict[int, dict[str, StoredAnswer]] = field(default_factory=dict)

    @property
    def chat_id(self) -> int:
        return self.incoming.chat_id
