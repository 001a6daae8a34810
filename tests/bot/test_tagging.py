"""Grievances are tagged in the bot: urgent signals and redaction before the reply, the classifier after."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from sqlalchemy import select

from bot import texts
from bot.engine import DialogEngine
from bot.fakeapi import FakeTelegram
from bot.simusers import SimUser
from bot.tagging import BackgroundTagging, ModelTags, NlpTagger, QuickTags
from minyi.wiring import make_transport
from storage import repository as repo
from storage.database import Database
from storage.models import Alert, Answer, AnswerTag
from tests.conftest import LINK_SECRET, Project, RunningBot, bot_settings, create_project


async def to_reasons(user: SimUser, project: Project) -> None:
    """Open the link and answer up to the free-text "reasons" question."""
    await user.send(project.start())
    await user.click("同意")
    await user.click("附近居民")
    await user.click("2")
    await user.click("不支持")
    assert "请说说您的理由" in user.last.text


async def tag_of(db: Database, question: str) -> AnswerTag:
    async with db.reading() as session:
        answer = (await session.scalars(select(Answer).where(Answer.question_code == question))).one()
        tag = await session.get(AnswerTag, answer.id)
    assert tag is not None
    return tag


async def test_self_harm_gets_care_and_a_hotline_at_once_and_an_alert(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    await to_reasons(user, project)
    care, question = await user.send("不给个说法我就不想活了", expect=2)
    assert care.text == texts.CARE.format(line=texts.DEFAULT_CRISIS_LINE)
    assert "施工期间担心什么" in question.text
    tag = await tag_of(running_bot.db, "reasons")
    assert tag.urgent and "self_harm" in tag.signals
    async with running_bot.db.reading() as session:
        alert = (await session.scalars(select(Alert))).one()
    assert (
        alert.status == "queued" and alert.grid_id == project.grid_ids["G01"] and "self_harm" in alert.signals
    )


async def test_a_conditional_threat_is_urgent_and_a_negated_one_is_not(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    threat, calm = running_bot.fake.user(), running_bot.fake.user()
    await to_reasons(threat, project)
    await to_reasons(calm, project)
    await threat.send("再不解决就去堵路")  # one message: no care message for a road block
    await calm.send("我们不想上访，只想把补偿说清楚")
    async with running_bot.db.reading() as session:
        alerts = (await session.scalars(select(Alert))).all()
    assert len(alerts) == 1 and "blocking" in alerts[0].signals


async def test_the_classifier_tags_after_the_reply_and_text_is_redacted(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    await to_reasons(user, project)
    await user.send("补偿太低了，安置房也没着落，我电话13912345678")
    tag = await tag_of(running_bot.db, "reasons")
    assert "13912345678" not in tag.redacted and "补偿太低了" in tag.redacted
    assert not tag.urgent
    await running_bot.engine.tagging.drain(seconds=120)
    tag = await tag_of(running_bot.db, "reasons")
    assert tag.tagged_at is not None and tag.categories is not None and "compensation" in tag.categories
    assert tag.scores is not None and tag.scores["compensation"] > 0.5


class BrokenModel(NlpTagger):
    """The real rules, a model that fails: the resident must not notice."""

    def classify(self, text: str) -> ModelTags:
        raise RuntimeError("model file is corrupt")

    def classify_many(self, texts: Sequence[str]) -> list[ModelTags]:
        raise RuntimeError("model file is corrupt")


async def test_a_failing_model_neither_blocks_nor_loses_the_answer(fake: FakeTelegram, db: Database) -> None:
    project = await create_project(db)
    engine = DialogEngine(db, link_secret=LINK_SECRET, tagger=BrokenModel())
    transport = make_transport("aiogram", engine, bot_settings(fake, db))
    task = asyncio.create_task(transport.run_polling())
    try:
        user = fake.user()
        await to_reasons(user, project)
        reply = await user.send("过渡费太少了")
        assert "施工期间担心什么" in reply[-1].text
        await engine.tagging.drain()
        tag = await tag_of(db, "reasons")
        assert tag.tagged_at is None and tag.categories is None
    finally:
        await transport.stop()
        await task
        await transport.close()
    # The next start tags what was left untagged, with a working model.
    recovered = DialogEngine(db, link_secret=LINK_SECRET)
    assert await recovered.tagging.catch_up() == 1
    await recovered.tagging.drain(seconds=120)
    tag = await tag_of(db, "reasons")
    assert tag.tagged_at is not None and tag.categories


class CountingModel:
    """Rules that find nothing, a model that tags everything "compensation" and counts its calls."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def quick(self, text: str) -> QuickTags:
        return QuickTags(False, (), text)

    def classify(self, text: str) -> ModelTags:
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[ModelTags]:
        self.batches.append(len(texts))
        return [ModelTags(("compensation",), {"compensation": 0.9}, False, "counting") for _ in texts]


async def untagged_answers(db: Database, count: int, texts: Sequence[str] = ()) -> list[int]:
    """`count` grievances (`texts`, or 意见0, 意见1, …) committed with their rule-based tags, not yet
    classified."""
    texts = texts or [f"意见{n}" for n in range(count)]
    project = await create_project(db)
    async with db.transaction() as session:
        submission = await repo.create_submission(
            session,
            project_id=project.id,
            version_id=project.version_id,
            grid_id=None,
            person_id=None,
            channel="telegram",
        )
        ids = []
        for n in range(count):
            answer = await repo.save_answer(session, submission, f"q{n}", texts[n], raw_text=texts[n])
            await repo.save_tags(session, answer.id, redacted=texts[n], urgent=False, signals=[])
            ids.append(answer.id)
    return ids


async def test_answers_waiting_for_the_model_are_classified_together(db: Database) -> None:
    ids = await untagged_answers(db, 5)
    model = CountingModel()
    tagging = BackgroundTagging(db, model, concurrency=1)
    for n, answer_id in enumerate(ids):
        tagging.schedule(answer_id, f"意见{n}")
    await tagging.drain()
    assert model.batches == [5] and tagging.pending == 0
    async with db.reading() as session:
        tags = (await session.scalars(select(AnswerTag).where(AnswerTag.answer_id.in_(ids)))).all()
    assert len(tags) == 5 and all(t.tagged_at is not None and t.categories == ["compensation"] for t in tags)


class StuckModel(CountingModel):
    """Tags like CountingModel, but its first call hangs until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def classify_many(self, texts: Sequence[str]) -> list[ModelTags]:
        if not self.batches:
            self.release.wait(30)
        return super().classify_many(texts)


async def test_a_stuck_model_never_queues_more_than_its_limit_and_loses_nothing(db: Database) -> None:
    ids = await untagged_answers(db, 9)
    model = StuckModel()
    tagging = BackgroundTagging(db, model, concurrency=1, max_waiting=3)
    for n, answer_id in enumerate(ids):
        tagging.schedule(answer_id, f"意见{n}")
        await asyncio.sleep(0)  # the first answer goes to the model, which hangs
    assert tagging.waiting == 3, "a stuck model must not let the queue grow past its limit"
    model.release.set()

    async def all_tagged() -> bool:
        async with db.reading() as session:
            tags = (await session.scalars(select(AnswerTag).where(AnswerTag.answer_id.in_(ids)))).all()
        return all(t.tagged_at is not None for t in tags)

    deadline = asyncio.get_running_loop().time() + 30
    while not await all_tagged():  # the five left out are fetched from the database once the queue empties
        assert asyncio.get_running_loop().time() < deadline, "answers that found the queue full were lost"
        await asyncio.sleep(0.05)
    await tagging.drain()
