"""Grid workers, assessors and admins in the bot, end to end over HTTP on both transports and databases:
invitations and roles, attributed QR links, door-to-door answers, urgent alerts."""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import timedelta

from PIL import Image
from sqlalchemy import insert, select, update

from bot import texts
from bot.simusers import SimUser
from minyi.commands.export import write
from storage import repository as repo
from storage import staff as staffing
from storage.database import Database
from storage.models import Alert, AlertDelivery, AuditEntry, GridWorker, Person, Submission, utcnow
from tests.bot.conftest import MakeStaffBot
from tests.bot.staff_support import ONE_EACH, ONE_EACH_CROSSED, StaffBot, add_staff, fast_settings, wait_until
from tests.conftest import NEEDS_CJK_FONT, Project, create_project

LINK = re.compile(r"https://t\.me/\w+\?start=([A-Za-z0-9_-]{1,64})")
URGENT = "补偿太低，我们明天就去省里集体上访"


async def audit_actions(db: Database) -> list[str]:
    async with db.reading() as session:
        return list((await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def person(db: Database, telegram_id: int) -> Person:
    async with db.reading() as session:
        row = (await session.scalars(select(Person).where(Person.telegram_id == telegram_id))).first()
    assert row is not None
    return row


async def answer_up_to_reasons(user: SimUser, start: str) -> None:
    await user.send(start)
    await user.click("同意")
    await user.click("产权人")
    await user.click("不能接受")
    await user.click("2")
    await user.click("不支持")
    assert "请说说您的理由" in user.last.text


@ONE_EACH
async def test_an_invitation_gives_a_role_once_and_roles_are_checked_on_every_command(
    staff_bot: StaffBot,
) -> None:
    db, fake = staff_bot.db, staff_bot.fake
    project = await create_project(db)
    resident = fake.user()
    for command in ("/push", "/qr", "/visit", "/progress", "/duty on"):
        assert (await resident.send(command))[-1].text == texts.HELP  # the resident's help, nothing more
    async with db.transaction() as session:
        code = await staffing.create_invite(
            session,
            role="gridworker",
            grid_ids=[project.grid_ids["G01"]],
            display_name="王网格",
            valid_for=timedelta(hours=1),
            created_by="cli",
        )
        expired = await staffing.create_invite(
            session, role="assessor", valid_for=timedelta(seconds=-1), created_by="cli"
        )

    worker = fake.user()
    welcome = (await worker.send(f"/start {code}"))[-1].text
    assert "王网格" in welcome and "网格员" in welcome and "网格G01" in welcome
    assert (await worker.send("/help"))[-1].text == texts.HELP_GRIDWORKER
    other = fake.user()
    assert (await other.send(f"/start {code}"))[-1].text == texts.INVITE_REFUSED["used"]
    assert (await other.send(expired))[-1].text == texts.INVITE_REFUSED["expired"]  # typed, no /start
    assert (await other.send("/push"))[-1].text == texts.HELP  # still a resident

    # A worker acts only within their own grids.
    refused = (await worker.send("/qr G02"))[-1].text
    assert refused.startswith("没有找到您负责的网格「G02」") and "G01 网格G01" in refused
    async with db.reading() as session:
        assignments = (await session.execute(select(GridWorker.grid_id, GridWorker.person_id))).all()
    joined = await person(db, worker.user_id)
    assert joined.role == "gridworker" and joined.display_name == "王网格"
    assert assignments == [(project.grid_ids["G01"], joined.id)]
    async with db.reading() as session:
        others = (await session.scalars(select(Person).where(Person.telegram_id == other.user_id))).all()
    assert all(p.role == "resident" for p in others)
    actions = await audit_actions(db)
    assert actions.count("invite.accepted") == 1 and actions.count("invite.refused") == 2

    assessor = fake.user((await add_staff(db, fake, "assessor", on_duty=True)).telegram_id)
    assert (await assessor.send("/duty off"))[-1].text == texts.DUTY_OFF
    assert not (await person(db, assessor.user_id)).on_duty
    assert (await assessor.send("/qr"))[-1].text == texts.HELP_ASSESSOR  # no grid of their own


@NEEDS_CJK_FONT
@ONE_EACH_CROSSED
async def test_a_workers_qr_link_attributes_answers_to_worker_and_grid(staff_bot: StaffBot) -> None:
    db, fake = staff_bot.db, staff_bot.fake
    project = await create_project(db)
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    worker = fake.user(row.telegram_id)
    poster = (await worker.send("/qr"))[-1]
    assert poster.photo is not None and poster.caption is not None
    with Image.open(io.BytesIO(poster.photo)) as image:
        assert image.format == "PNG" and image.size == (1240, 1754)
    assert "测试工程意见调查" in poster.caption and "T1-G01" in poster.caption
    found = LINK.search(poster.caption)
    assert found is not None
    payload = found.group(1)

    resident = fake.user()
    await resident.send(f"/start {payload}")
    await resident.click("同意")
    tampered = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    assert (await fake.user().send(f"/start {tampered}"))[-1].text == texts.LINK_INVALID
    typed = fake.user()  # a client that dropped the payload: the typed code still finds the grid
    await typed.send("t1-g01")
    await typed.click("同意")

    async with db.reading() as session:
        rows = (await session.scalars(select(Submission).order_by(Submission.id))).all()
    assert [(s.grid_id, s.referrer_id, s.channel) for s in rows] == [
        (project.grid_ids["G01"], row.id, "telegram"),
        (project.grid_ids["G01"], None, "telegram"),
    ]


@ONE_EACH
async def test_a_door_to_door_answer_is_a_proxy_submission_the_household_can_confirm(
    staff_bot: StaffBot,
) -> None:
    db, fake = staff_bot.db, staff_bot.fake
    project = await create_project(db)
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G02"]], name="王网格")
    worker = fake.user(row.telegram_id)
    assert "不要写姓名和电话" in (await worker.send("/visit"))[-1].text
    assert (await worker.send("3栋2单元101"))[-1].button_texts()[0] == "户主本人"
    consent = (await worker.click("配偶")).messages[-1]
    assert consent.text.startswith(texts.VISIT_INTRO) and consent.button_texts()[0] == "同意"
    assert "户主本人" not in worker.messages[-2].text and "配偶" in worker.messages[-2].text
    await worker.click("同意")
    for button in ("租户", "能接受", "3", "有条件支持"):
        await worker.click(button)
    await worker.send("要先公开补偿标准")
    await worker.click("噪音", expect=0)
    await worker.click("完成")
    await worker.send("2")
    await worker.click("跳过")
    await worker.click("不用了")
    done = (await worker.click(texts.BUTTON_SUBMIT)).messages[-1].text
    assert "3栋2单元101" in done and "提交成功" not in done
    found = LINK.search(done)
    assert found is not None

    async with db.reading() as session:
        visit = (await session.scalars(select(Submission))).one()
        answers = await repo.answers_of(session, visit.id)
    assert (visit.channel, visit.entered_by_id, visit.person_id) == ("visit", row.id, None)
    assert (visit.household, visit.respondent, visit.status) == ("3栋2单元101", "spouse", "submitted")
    assert visit.grid_id == project.grid_ids["G02"] and answers["reasons"].value == {"v": "要先公开补偿标准"}

    household = fake.user()
    shown = (await household.send(f"/start {found.group(1)}"))[-1]
    assert "王网格" in shown.text and "3栋2单元101" in shown.text and "要先公开补偿标准" in shown.text
    intruder = fake.user()  # button data can be forged by a client; it is bound to who opened the link
    await intruder.send("/start")
    forged = await intruder.click(data=shown.button_data(texts.BUTTON_CONFIRM_VISIT), expect=0)
    assert forged.answer_text == texts.STALE_BUTTON
    await household.click(texts.BUTTON_CONFIRM_VISIT)
    assert visit.receipt in (await household.send("/mydata"))[-1].text
    again = (await fake.user().send(f"/start {found.group(1)}"))[-1]
    assert again.text == texts.VISIT_ALREADY_DONE

    resident = fake.user()  # someone answering on their own phone, for the export
    await resident.send(project.start("G02"))
    await resident.click("同意")
    await resident.click("附近居民")
    progress = (await worker.send("/progress"))[-1].text
    assert "【网格G02】100 户\n已开始 2 · 已提交 1（其中代填 1）· 回收率 1%" in progress
    started = (await session_receipts(db))[-1]
    assert f"· {started}：已答 1 题" in progress  # who to visit next
    async with db.reading() as session:
        confirmed = await session.get(Submission, visit.id)
        rows = await repo.submission_rows(session, project.id)
    assert confirmed is not None and confirmed.confirmation == "confirmed"
    assert confirmed.person_id == (await person(db, household.user_id)).id
    out = io.StringIO()
    write(out, "csv", rows, ["relation", "reasons"])
    lines = out.getvalue().splitlines()
    header = lines[0].split(",")
    channel, proxy = header.index("channel"), header.index("proxy")
    assert [(line.split(",")[channel], line.split(",")[proxy]) for line in lines[1:]] == [
        ("visit", "true"),
        ("telegram", "false"),
    ]
    assert {"visit.started", "visit.submitted", "visit.confirmed"} <= set(await audit_actions(db))


@ONE_EACH_CROSSED
async def test_an_urgent_answer_alerts_the_grid_worker_and_assessors_on_duty_and_nobody_else(
    staff_bot: StaffBot,
) -> None:
    db, fake = staff_bot.db, staff_bot.fake
    project = await create_project(db)
    mine = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    other_grid = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G02"]], name="李网格")
    on_duty = await add_staff(db, fake, "assessor", name="赵评估", on_duty=True)
    gone = await add_staff(db, fake, "assessor", name="周评估", on_duty=True)  # will block the bot
    off_duty = await add_staff(db, fake, "assessor", name="孙评估", on_duty=False)
    admin = await add_staff(db, fake, "admin", name="钱管理")
    worker, assessor = fake.user(mine.telegram_id), fake.user(on_duty.telegram_id)

    resident = fake.user()
    await answer_up_to_reasons(resident, project.start("G01"))
    answered = time.monotonic()
    await resident.send(URGENT)
    await worker.wait_for(lambda: any("紧急情况提醒" in m.text for m in worker.messages))
    await assessor.wait_for(lambda: any("紧急情况提醒" in m.text for m in assessor.messages))
    assert time.monotonic() - answered < 60  # "within a minute"; here it takes well under a second
    alert = worker.last
    for words in ("集体上访", "测试工程意见调查", "网格G01", URGENT):
        assert words in alert.text
    assert alert.button_texts() == [texts.BUTTON_ACK, texts.BUTTON_ESCALATE]
    await asyncio.sleep(0.3)  # a few more passes of the outreach loop: still nobody else
    for outsider in (other_grid, off_duty, admin):
        assert fake.chat_messages(outsider.telegram_id) == []

    await fake.user(gone.telegram_id).wait_for(lambda: len(fake.chat_messages(gone.telegram_id)) == 1)
    fake.block(gone.telegram_id)  # updating their copy fails with 403: the others still get theirs
    click = await worker.click(texts.BUTTON_ACK, expect=0)
    assert click.answer_text == texts.ALERT_ACK_TOAST
    assert worker.last.text.endswith(texts.ALERT_ACKED_BY_YOU) and worker.last.buttons == []
    await assessor.wait_for(lambda: "王网格已确认收到" in assessor.last.text)
    assert assessor.last.buttons == []
    async with db.reading() as session:
        stored = (await session.scalars(select(Alert))).one()
        copies = (await session.scalars(select(AlertDelivery))).all()
    assert (stored.status, stored.acknowledged_by_id) == ("acknowledged", mine.id)
    assert sorted((c.person_id, c.audience) for c in copies) == [
        (mine.id, "grid"),
        (on_duty.id, "assessor"),
        (gone.id, "assessor"),
    ]
    await wait_until(lambda: _blocked(db, gone.telegram_id), 10, "marked as having blocked the bot")
    actions = await audit_actions(db)
    assert actions.index("alert.sent") < actions.index("alert.acknowledged")


@ONE_EACH
async def test_unacknowledged_or_escalated_alerts_reach_the_admins(staff_bot_factory: MakeStaffBot) -> None:
    bot = await staff_bot_factory(fast_settings(alert_admins_after=timedelta(seconds=1.5)))
    db, fake = bot.db, bot.fake
    project: Project = await create_project(db)
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G02"]], name="李网格")
    admin_row = await add_staff(db, fake, "admin", name="钱管理")
    worker, admin = fake.user(row.telegram_id), fake.user(admin_row.telegram_id)
    async with db.transaction() as session:
        for words in ("明天去堵路", "我们要去拉横幅"):
            await session.execute(
                insert(Alert).values(
                    project_id=project.id,
                    grid_id=project.grid_ids["G02"],
                    signals=["blocking"],
                    redacted=words,
                    status="queued",
                )
            )
    await worker.wait_for(lambda: len(worker.messages) == 2)
    assert admin.messages == []  # the grid's worker first
    escalated = next(m for m in worker.messages if "拉横幅" in m.text)
    click = await worker.click(texts.BUTTON_ESCALATE, message=escalated, expect=0)
    assert click.answer_text == texts.ALERT_ESCALATED_TOAST
    await admin.wait_for(lambda: any("李网格请求上报" in m.text for m in admin.messages))
    await admin.wait_for(lambda: any("无人确认" in m.text and "堵路" in m.text for m in admin.messages), 10)
    assert len(admin.messages) == 2
    timed_out = next(m for m in admin.messages if "无人确认" in m.text)
    assert timed_out.button_texts() == [texts.BUTTON_ACK]  # escalation ends with the admins
    await admin.click(texts.BUTTON_ACK, message=timed_out, expect=0)
    await wait_until(lambda: "钱管理已确认收到" in fake.chat_messages(worker.user_id)[0].text, 10, "edit")
    async with db.reading() as session:
        alerts = (await session.scalars(select(Alert).order_by(Alert.id))).all()
        reasons = (
            await session.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "alert.resent_to_admins")
            )
        ).all()
    assert [(a.status, a.acknowledged_by_id) for a in alerts] == [
        ("acknowledged", admin_row.id),
        ("escalated", None),
    ]
    assert sorted(detail["reason"] for detail in reasons) == [f"person:{row.id}", "timeout"]


@ONE_EACH
async def test_an_alert_nobody_could_receive_waits_and_reaches_the_first_person_who_can(
    staff_bot: StaffBot,
) -> None:
    db, fake = staff_bot.db, staff_bot.fake
    project = await create_project(db)
    elsewhere = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G02"]], name="李网格")
    resident = fake.user()
    await answer_up_to_reasons(resident, project.start("G01"))  # G01 has no worker, nobody is on duty
    await resident.send(URGENT)

    async def status() -> str:
        async with db.reading() as session:
            alert = (await session.scalars(select(Alert))).first()
        return alert.status if alert is not None else ""

    async def unrouted() -> bool:
        return await status() == "unrouted"

    await wait_until(unrouted, 10, "the alert marked as reaching nobody")
    await asyncio.sleep(0.3)  # more passes of the outreach loop: still nobody to tell, nothing sent
    assert fake.chat_messages(elsewhere.telegram_id) == []

    # A worker is put on the grid: the waiting alert goes to them, once, and to nobody outside the grid.
    newcomer = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    worker = fake.user(newcomer.telegram_id)
    await worker.wait_for(lambda: any("紧急情况提醒" in m.text for m in worker.messages))

    async def sent() -> bool:
        return await status() == "sent"

    await wait_until(sent, 10, "the alert marked as sent")  # recorded once the copies are out
    await asyncio.sleep(0.3)
    assert [m.text.count("紧急情况提醒") for m in worker.messages] == [1]
    assert fake.chat_messages(elsewhere.telegram_id) == []
    actions = await audit_actions(db)
    assert actions.index("alert.unrouted") < actions.index("alert.sent")


@ONE_EACH
async def test_an_alert_that_waited_for_someone_gives_them_the_full_time_to_acknowledge(
    staff_bot_factory: MakeStaffBot,
) -> None:
    bot = await staff_bot_factory(fast_settings(alert_admins_after=timedelta(seconds=2)))
    db, fake = bot.db, bot.fake
    project = await create_project(db)
    async with db.transaction() as session:
        await session.execute(
            insert(Alert).values(
                project_id=project.id,
                grid_id=project.grid_ids["G01"],
                signals=["blocking"],
                redacted="明天去堵路",
                status="queued",
            )
        )

    async def status() -> str:
        async with db.reading() as session:
            return (await session.scalars(select(Alert.status))).one()

    async def unrouted() -> bool:
        return await status() == "unrouted"

    await wait_until(unrouted, 10, "the alert marked as reaching nobody")
    async with db.transaction() as session:  # nobody could receive it for an hour
        await session.execute(update(Alert).values(sent_at=utcnow() - timedelta(hours=1)))
    row = await add_staff(db, fake, "gridworker", grid_ids=[project.grid_ids["G01"]], name="王网格")
    worker = fake.user(row.telegram_id)
    await worker.wait_for(lambda: any("堵路" in m.text for m in worker.messages))
    admin_row = await add_staff(db, fake, "admin", name="钱管理")
    admin = fake.user(admin_row.telegram_id)
    await asyncio.sleep(1.0)  # within the 2 s the worker has to acknowledge: the admin is not told yet
    assert admin.messages == []
    await admin.wait_for(lambda: any("无人确认" in m.text for m in admin.messages), 10)


async def _blocked(db: Database, telegram_id: int) -> bool:
    return (await person(db, telegram_id)).blocked_bot


async def session_receipts(db: Database) -> list[str]:
    async with db.reading() as session:
        return list((await session.scalars(select(Submission.receipt).order_by(Submission.id))).all())
