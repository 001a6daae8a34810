"""Grievance tagging in the bot: urgent rules and redaction before the reply, the classifier after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sqlalchemy import select

from storage.database import Database
from storage.models import Answer, AnswerTag, utcnow

log = logging.getLogger(__name__)

SELF_HARM = "self_harm"
# Answers classified in one call at most: the model costs about a tenth per text in a batch of twenty
# of what it costs for one text alone (vectorising and the matrix product are per call, not per text).
BATCH = 32
MAX_WAITING = 10_000  # answers queued for the classifier in memory at most
MODEL_NAME = "seed-risk-model"  # stored with each answer's tags


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


@runtime_checkable
class BatchTagger(Tagger, Protocol):
    """A tagger that classifies several texts in one call, in their order."""

    def classify_many(self, texts: Sequence[str]) -> list[ModelTags]: ...


@runtime_checkable
class OffloadedTagger(Tagger, Protocol):
    """A tagger that classifies away from the event loop by itself (bot.classifier_process: in a process
    of its own), so BackgroundTagging awaits it instead of lending it a thread; None where it failed."""

    async def classify_batch(self, texts: Sequence[str]) -> list[ModelTags | None]: ...


def classify_texts(tagger: Tagger, texts: Sequence[str]) -> list[ModelTags | None]:
    """The model's tags for each text, None where it failed; blocking (a worker thread or process)."""
    if isinstance(tagger, BatchTagger) and len(texts) > 1:
        try:
            return list(tagger.classify_many(texts))
        except Exception:
            log.exception("classifier failed on a batch of %s; trying them one by one", len(texts))
    tags: list[ModelTags | None] = []
    for text in texts:
        try:
            tags.append(tagger.classify(text))
        except Exception:
            log.exception("classifier failed on an answer; it stays untagged for now")
            tags.append(None)
    return tags


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
        return ModelTags(result.categories, result.scores, result.uncertain, MODEL_NAME)

    def classify_many(self, texts: Sequence[str]) -> list[ModelTags]:
        from nlp.pipeline import tag_many

        return [ModelTags(r.categories, r.scores, r.uncertain, MODEL_NAME) for r in tag_many(texts)]


class BackgroundTagging:
    """Classifies committed answers off the event loop, a few batches at a time, each batch's results in
    one transaction.

    A slow or failing model never delays a reply or loses an answer: the answer and its rule-based tags are
    already committed; an answer the model could not tag keeps `tagged_at` empty and is tried again by
    `catch_up()` when the bot starts. Answers that arrive while the model is busy wait and go together in
    the next call (under load, most of them).
    """

    def __init__(
        self, db: Database, tagger: Tagger, *, concurrency: int = 2, max_waiting: int = MAX_WAITING
    ) -> None:
        self.db = db
        self.tagger = tagger
        self.max_waiting = max_waiting
        # A tagger with a worker process of its own takes one batch at a time: answers that arrive meanwhile
        # wait and go together in the next batch instead of queueing one by one in front of the worker.
        self._slots = asyncio.Semaphore(1 if isinstance(tagger, OffloadedTagger) else concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[int, str]] = []
        self._left_out = False  # answers were not queued (queue full): fetch them again once it is empty

    def schedule(self, answer_id: int, text: str) -> None:
        if len(self._waiting) >= self.max_waiting:
            # A stuck or slow model must not fill the memory: the answer stays untagged in the database,
            # where `catch_up` finds it once the queue has emptied.
            if not self._left_out:
                log.warning("%s answers queued for the classifier; more wait in the database", self.waiting)
            self._left_out = True
            return
        self._waiting.append((answer_id, text))
        # One task per answer keeps `pending` and `drain` simple; a task whose answer an earlier batch
        # took finds nothing waiting and ends.
        task = asyncio.create_task(self._tag_waiting())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

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

    async def _tag_waiting(self) -> None:
        await self._tag_batch()
        if self._left_out and not self._waiting:
            self._left_out = False
            await self.catch_up()  # the answers that found the queue full

    async def _tag_batch(self) -> None:
        async with self._slots:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            if not batch:
                return
            texts = [text for _, text in batch]
            if isinstance(self.tagger, OffloadedTagger):
                found = await self.tagger.classify_batch(texts)
            else:
                found = await asyncio.to_thread(classify_texts, self.tagger, texts)
            results = {
                answer_id: (text, tags)
                for (answer_id, text), tags in zip(batch, found, strict=True)
                if tags is not None
            }
            if not results:
                return
            async with self.db.transaction() as session:
                rows = await session.execute(
                    select(AnswerTag, Answer.raw_text)
                    .join(Answer, Answer.id == AnswerTag.answer_id)
                    .where(AnswerTag.answer_id.in_(list(results)))
                )
                for row, raw_text in rows:
                    text, tags = results[row.answer_id]
                    if raw_text != text:
                        continue  # answered again meanwhile: that answer gets its own turn
                    row.categories = list(tags.categories)
                    row.scores = {code: round(float(score), 4) for code, score in tags.scores.items()}
                    row.uncertain = tags.uncertain
                    row.model = tags.model[:64]
                    row.tagged_at = utcnow()
