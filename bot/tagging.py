"""Grievance tagging in the bot: urgent rules and redaction before the reply, the classifier after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select

from storage.database import Database
from storage.models import Answer, AnswerTag, utcnow

log = logging.getLogger(__name__)

SELF_HARM = "self_harm"


@dataclass(frozen=True, slots=True)
class QuickTags:
    """What the high-recall rules say, fast enough to decide the reply."""

    urgent: bool
    signals: tuple[str, ...]
    redacted: str


@dataclass(frozen=True, slots=True)
class ModelTags:
    """What the classifier says; advisory, a person confirms or corrects it."""

    categories: tuple[str, ...]
    scores: Mapping[str, float] = field(default_factory=dict)
    uncertain: bool = False
    model: str = ""


class Tagger(Protocol):
    def quick(self, text: str) -> QuickTags: ...

    def classify(self, text: str) -> ModelTags: ...


class NlpTagger:
    """The nlp library's rules, redaction and default risk model (loaded or built once, on first use)."""

    def quick(self, text: str) -> QuickTags:
        from nlp.escalation import detect
        from nlp.redact import redact

        escalation = detect(text)
        return QuickTags(escalation.urgent, tuple(escalation.signals), redact(text).text)

    def classify(self, text: str) -> ModelTags:
        from nlp.pipeline import tag

        result = tag(text)
        return ModelTags(result.categories, result.scores, result.uncertain, "seed-risk-model")


class BackgroundTagging:
    """Classifies committed answers off the event loop, a few at a time, each result in its own transaction.

    A slow or failing model never delays a reply or loses an answer: the answer and its rule-based tags are
    already committed; an answer the model could not tag keeps `tagged_at` empty and is tried again by
    `catch_up()` when the bot starts.
    """

    def __init__(self, db: Database, tagger: Tagger, *, concurrency: int = 2) -> None:
        self.db = db
        self.tagger = tagger
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, answer_id: int, text: str) -> None:
        task = asyncio.create_task(self._tag(answer_id, text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, seconds: float = 30.0) -> None:
        """Wait for scheduled tagging to finish (at shutdown, and in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)

    async def catch_up(self) -> int:
        """Schedule every grievance whose classification is missing; returns how many."""
        async with self.db.reading() as session:
            rows = (
                await session.execute(
                    select(Answer.id, Answer.raw_text)
                    .join(AnswerTag, AnswerTag.answer_id == Answer.id)
                    .where(AnswerTag.tagged_at.is_(None))
                )
            ).all()
        for answer_id, text in rows:
            self.schedule(answer_id, text)
        return len(rows)

    async def _tag(self, answer_id: int, text: str) -> None:
        async with self._slots:
            try:
                tags = await asyncio.to_thread(self.tagger.classify, text)
            except Exception:
                log.exception("classifier failed on answer %s; it stays untagged for now", answer_id)
                return
            async with self.db.transaction() as session:
                row = await session.get(AnswerTag, answer_id)
                answer = await session.get(Answer, answer_id)
                if row is None or answer is None or answer.raw_text != text:
                    return  # erased or answered again meanwhile: that answer gets its own turn
                row.categories = list(tags.categories)
                row.scores = {code: round(float(score), 4) for code, score in tags.scores.items()}
                row.uncertain = tags.uncertain
                row.model = tags.model[:64]
                row.tagged_at = utcnow()
