"""The classifier in a process of its own: it tags as the bot's own process would, and a worker that
dies is replaced without losing the batch it had."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.classifier_process import ProcessTagger
from bot.tagging import BackgroundTagging, NlpTagger
from storage.database import Database
from storage.models import AnswerTag
from tests.bot.test_tagging import untagged_answers

GRIEVANCES = (
    "补偿太低了，一平才给3800，周边二手房都要一万二",
    "晚上十一点还在施工，噪音太大，孩子没法睡觉",
    "渣土车天天从小学门口过，开得飞快，太危险了",
)


@pytest.fixture
async def tagger() -> AsyncIterator[ProcessTagger]:
    started = ProcessTagger()
    await started.start()
    yield started
    await started.close()


async def test_the_worker_process_stores_the_tags_the_model_gives_in_process(
    db: Database, tagger: ProcessTagger
) -> None:
    assert tagger.worker_pid not in (None, os.getpid())
    ids = await untagged_answers(db, len(GRIEVANCES), GRIEVANCES)
    tagging = BackgroundTagging(db, tagger)
    for answer_id, text in zip(ids, GRIEVANCES, strict=True):
        tagging.schedule(answer_id, text)
    await tagging.drain(seconds=60)

    expected = NlpTagger().classify_many(GRIEVANCES)
    async with db.reading() as session:
        stored = {
            t.answer_id: t
            for t in await session.scalars(select(AnswerTag).where(AnswerTag.answer_id.in_(ids)))
        }
    for answer_id, tags in zip(ids, expected, strict=True):
        assert stored[answer_id].tagged_at is not None
        assert stored[answer_id].categories == list(tags.categories) and tags.categories


async def test_a_worker_that_dies_is_replaced_and_its_batch_still_tagged(tagger: ProcessTagger) -> None:
    first = tagger.worker_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    found = await tagger.classify_batch(GRIEVANCES[:1])
    assert found[0] is not None and "compensation" in found[0].categories
    assert tagger.worker_pid not in (None, first)
