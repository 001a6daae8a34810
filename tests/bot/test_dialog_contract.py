"""The resident's dialog, end to end over HTTP: each test runs on aiogram and PTB, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot import texts
from bot.simusers import SimUser
from storage.database import Database
from storage.models import Answer, AuditEntry, Person, ProcessedUpdate, Submission
from tests.conftest import Project, RunningBot, create_project


async def answers_in_db(db: Database) -> dict[str, Any]:
    async with db.reading() as session:
        rows = await session.scalars(select(Answer).order_by(Answer.seq))
        return {a.question_code: a.value["v"] for a in rows}


async def only_submission(db: Database) -> Submission:
    async with db.reading() as session:
        rows = (await session.scalars(select(Submission))).all()
    assert len(rows) == 1, rows
    return rows[0]


async def begin(bot: RunningBot, project: Project, user: SimUser | None = None) -> SimUser:
    """Open the link and agree: the first question is on screen."""
    user = user or bot.fake.user()
    consent = (await user.send(project.start()))[-1]
    assert "测试工程意见调查" in consent.text and "用途" in consent.text
    assert consent.button_texts() == ["同意", "匿名填写", "不同意"]
    click = await user.click("同意")
    assert "您和工程是什么关系" in click.messages[-1].text
    return user


async def to_summary(user: SimUser) -> None:
    """From the first question, as an owner who opposes: every kind of question once."""
    await user.click("产权人")
    await user.click("不能接受")
    await user.click("2")
    await user.click("不支持")
    await user.send("补偿太低")
    await user.click("噪音", expect=0)
    await user.click("完成")
    await user.send("3口人")
    await user.click("跳过")
    await user.click("不用了")
    assert user.last.text.startswith(texts.SUMMARY_HEAD)


async def test_happy_path_stores_every_answer_and_gives_a_receipt(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await to_summary(user)
    summary = user.last.text
    assert "补偿太低" in summary and "噪音" in summary and "3" in summary
    click = await user.click(texts.BUTTON_SUBMIT)
    receipt_message = click.messages[-1].text
    assert "提交成功" in receipt_message
    submission = await only_submission(running_bot.db)
    assert submission.receipt in receipt_message
    assert submission.status == "submitted" and submission.submitted_at is not None
    assert submission.questionnaire_version_id == project.version_id
    assert submission.grid_id == project.grid_ids["G01"] and submission.channel == "telegram"
    assert await answers_in_db(running_bot.db) == {
        "relation": "owner",
        "compensation": "no",
        "necessity": 2,
        "attitude": "oppose",
        "reasons": "补偿太低",
        "concerns": ["noise"],
        "household": 3,
        "suggestions": None,
        "phone": None,
    }
    # the summary's buttons are gone once submitted, so it cannot be submitted twice
    assert user.messages[-2].buttons == []


async def test_skip_logic_leaves_out_questions_that_do_not_apply(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    click = await user.click("附近居民")  # not an owner: no compensation question
    assert "工程有必要吗" in click.messages[-1].text
    await user.click("4 非常必要")
    click = await user.click("支持")  # supporters are not asked for reasons
    assert "施工期间担心什么" in click.messages[-1].text
    answers = await answers_in_db(running_bot.db)
    assert answers == {"relation": "nearby", "necessity": 4, "attitude": "support"}


async def test_back_re_asks_the_previous_question_with_its_answer(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.click("产权人")
    back = (await user.send("/back"))[-1]
    assert "您和工程是什么关系" in back.text and "产权人" in back.text
    assert "✓ 产权人" in back.button_texts() and texts.BUTTON_KEEP in back.button_texts()
    click = await user.click("租户")
    assert "补偿方案能接受吗" in click.messages[-1].text
    assert (await answers_in_db(running_bot.db))["relation"] == "tenant"
    first = (await user.send("/back"))[-1]
    await user.click(texts.BUTTON_KEEP, message=first)
    assert "补偿方案能接受吗" in user.last.text


async def test_edit_from_the_summary_asks_what_now_applies(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.click("附近居民")
    await user.click("3")
    await user.click("支持")
    await user.click("扬尘", expect=0)
    await user.click("完成")
    await user.send("2")
    await user.click("跳过")
    await user.click("不用了")
    assert user.last.text.startswith(texts.SUMMARY_HEAD)
    await user.click(texts.BUTTON_EDIT)
    click = await user.click("您的态度是")
    assert "您的态度是" in click.messages[-1].text
    click = await user.click("有条件支持")
    # the change makes "reasons" apply: it is asked, then straight back to the summary
    assert "请说说您的理由" in click.messages[-1].text
    summary = (await user.send("要先把补偿标准公开"))[-1]
    assert summary.text.startswith(texts.SUMMARY_HEAD) and "要先把补偿标准公开" in summary.text
    await user.click(texts.BUTTON_SUBMIT)
    answers = await answers_in_db(running_bot.db)
    assert answers["attitude"] == "conditional" and answers["reasons"] == "要先把补偿标准公开"


async def test_resume_after_a_bot_restart_exactly_where_they_left(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.click("产权人")
    await user.click("能接受")
    await running_bot.restart()
    welcome = (await user.send("/start"))[-1]
    assert texts.WELCOME_BACK in welcome.text and "工程有必要吗" in welcome.text
    await user.click("4 非常必要", message=welcome)
    assert await answers_in_db(running_bot.db) == {"relation": "owner", "compensation": "yes", "necessity": 4}
    # a message after the restart continues too, without /start
    reask = (await user.send("嗯"))[-1]
    assert "您的态度是" in reask.text


async def test_media_where_text_or_buttons_are_expected_gets_a_kind_re_ask(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    for send in (user.send_sticker, user.send_photo, user.send_voice, user.send_location, user.send_contact):
        reply = (await send())[-1]
        assert reply.text.startswith(texts.REASK_MEDIA) and "您和工程是什么关系" in reply.text
    assert await answers_in_db(running_bot.db) == {}


async def test_typed_text_is_matched_to_an_option_when_it_clearly_is_one(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.send("附近居民")
    await user.send("3")
    unclear = (await user.send("看情况吧"))[-1]
    assert unclear.text.startswith(texts.REASK_CHOICE)
    await user.send("我不支持！")
    assert (await answers_in_db(running_bot.db)) == {
        "relation": "nearby",
        "necessity": 3,
        "attitude": "oppose",
    }


async def test_bad_text_answers_are_re_asked_and_nothing_is_stored(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.click("附近居民")
    await user.click("3")
    await user.click("不支持")
    too_long = (await user.send("太" * 51))[-1]
    assert "51" in too_long.text and "50" in too_long.text and "请说说您的理由" in too_long.text
    empty = (await user.send("   "))[-1]
    assert empty.text.startswith(texts.REASK_EMPTY)
    assert "reasons" not in await answers_in_db(running_bot.db)
    await user.send("理由")
    nothing = await user.click("完成", expect=0)
    assert nothing.answer_text == texts.TOO_FEW.format(n=1) and nothing.messages == []
    await user.click("噪音", expect=0)
    await user.click("扬尘", expect=0)
    too_many = await user.click("堵车", expect=0)
    assert too_many.answer_text == texts.TOO_MANY.format(n=2)
    await user.click("完成")
    assert (await user.send("很多"))[-1].text.startswith(texts.REASK_NUMBER)
    assert (await user.send("99"))[-1].text.startswith(texts.REASK_RANGE.format(low=1, high=20))
    assert (await user.send("2.5"))[-1].text.startswith(texts.REASK_INTEGER)
    await user.send("两")
    await user.send("跳过")
    await user.click("愿意留电话")
    assert (await user.send("12345"))[-1].text.startswith(texts.REASK_PHONE)
    summary = (await user.send("138 0013 8000"))[-1]
    assert summary.text.startswith(texts.SUMMARY_HEAD)
    answers = await answers_in_db(running_bot.db)
    assert answers["concerns"] == ["noise", "dust"] and answers["household"] == 2
    assert answers["phone"] == "13800138000" and answers["reasons"] == "理由"


async def test_stale_and_forged_buttons_change_nothing(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    first_question = user.last
    await user.send("附近居民")  # typed: the first question's buttons stay on screen
    stale = await user.click("产权人", message=first_question, expect=0)
    assert stale.answer_text == texts.STALE_BUTTON
    old_version = await user.click(data=f"a:{project.version_id + 7}:necessity:1", expect=0)
    assert old_version.answer_text == texts.STALE_BUTTON
    forged = await user.click(data="garbage:::", expect=0)
    assert forged.answer_text == texts.STALE_BUTTON
    wrong_option = await user.click(data=f"a:{project.version_id}:necessity:9", expect=0)
    assert wrong_option.answer_text == texts.STALE_BUTTON
    assert await answers_in_db(running_bot.db) == {"relation": "nearby"}


async def test_a_double_tap_answers_once(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    clicks = await user.double_click("产权人", expect=1)
    assert "补偿方案能接受吗" in clicks[0].messages[-1].text
    assert clicks[1].answer_text == texts.STALE_BUTTON
    async with running_bot.db.reading() as session:
        count = await session.scalar(select(func.count()).select_from(Answer))
    assert count == 1


async def test_the_same_update_delivered_twice_is_handled_once(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await user.send("租户")
    async with running_bot.db.reading() as session:
        last_update = await session.scalar(select(func.max(ProcessedUpdate.update_id)))
        answer = (await session.scalars(select(Answer))).one()
    assert answer.update_id == last_update
    before = len(user.messages)
    await running_bot.fake.redeliver(last_update)
    await user.send("能接受")  # the next real message is answered; the redelivered one was not
    assert len(user.messages) == before + 1
    assert await answers_in_db(running_bot.db) == {"relation": "tenant", "compensation": "yes"}


async def test_messages_in_groups_get_a_hint_to_talk_privately(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    hint = await user.send_in_group(project.start())
    assert hint[-1].text == texts.GROUP_HINT
    await user.send_in_group("大家好", expect=0)
    async with running_bot.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0


async def test_declining_consent_keeps_nothing_personal(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    await user.send(project.start())
    goodbye = await user.click("不同意")
    assert goodbye.messages[-1].text == texts.DECLINED
    async with running_bot.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0
        assert await session.scalar(select(func.count()).select_from(Submission)) == 0
        audit = (await session.scalars(select(AuditEntry))).all()
    assert [a.action for a in audit] == ["consent.declined"]
    assert "actor" not in str(audit[0].detail) and audit[0].actor == "system"


async def test_anonymous_residents_are_never_asked_for_a_phone(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    await user.send(project.start())
    await user.click("匿名填写")
    await user.click("附近居民")
    await user.click("1 完全没必要")
    await user.click("无所谓")
    await user.click("堵车", expect=0)
    await user.click("完成")
    await user.send("1")
    summary = await user.click("跳过")
    assert summary.messages[-1].text.startswith(texts.SUMMARY_HEAD)
    await user.click(texts.BUTTON_SUBMIT)
    submission = await only_submission(running_bot.db)
    assert submission.anonymous and "phone" not in await answers_in_db(running_bot.db)


async def test_mydata_shows_and_delete_erases_own_data(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = await begin(running_bot, project)
    await to_summary(user)
    await user.click(texts.BUTTON_SUBMIT)
    mine = (await user.send("/mydata"))[-1]
    assert "补偿太低" in mine.text and "已提交" in mine.text
    confirm = (await user.send("/delete"))[-1]
    assert confirm.text == texts.DELETE_CONFIRM
    kept = await user.click(texts.BUTTON_DELETE_NO)
    assert kept.messages[-1].text == texts.DELETE_KEPT
    assert len(await answers_in_db(running_bot.db)) == 9
    await user.send("/delete")
    erased = await user.click(texts.BUTTON_DELETE_YES)
    assert erased.messages[-1].text == texts.DELETED
    assert await answers_in_db(running_bot.db) == {}
    submission = await only_submission(running_bot.db)
    assert submission.status == "withdrawn" and submission.person_id is None
    async with running_bot.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0
    assert (await user.send("/mydata"))[-1].text == texts.MYDATA_NONE


async def test_plain_start_asks_for_a_code_and_a_typed_code_works(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    assert (await user.send("/start"))[-1].text == texts.ASK_CODE
    assert (await user.send("T1-G99"))[-1].text == texts.CODE_NOT_FOUND
    consent = (await user.send("t1 g02"))[-1]
    assert consent.button_texts()[0] == "同意"
    await user.click("同意")
    submission = await only_submission(running_bot.db)
    assert submission.grid_id == project.grid_ids["G02"]


async def test_a_tampered_link_is_refused_politely(running_bot: RunningBot) -> None:
    project = await create_project(running_bot.db)
    user = running_bot.fake.user()
    start = project.start()
    tampered = start[:-3] + ("AAA" if not start.endswith("AAA") else "BBB")
    assert (await user.send(tampered))[-1].text == texts.LINK_INVALID
    assert (await user.send("/start !!!"))[-1].text == texts.LINK_INVALID
    assert (await user.send("/help"))[-1].text == texts.HELP
    assert (await user.send("/frobnicate"))[-1].text == texts.UNKNOWN_COMMAND
