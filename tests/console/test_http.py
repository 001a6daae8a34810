"""The console over HTTP against a real database: every route and role, CSRF, escaping, grid scoping,
sign-in throttling, expiring sessions, audit of views and changes, and the review → register loop."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from console import charts
from console.levels import DEFAULT_RULES
from storage.models import (
    Alert,
    AuditEntry,
    ConsoleSession,
    LevelSignoff,
    Notification,
    Review,
    RiskItem,
    RiskItemAnswer,
    Submission,
    utcnow,
)
from tests.conftest import NEEDS_CJK_FONT
from tests.console.conftest import BOTH_DATABASES, Console

P = "/p/RW"
# Every page, and who may open it (anyone else signed in gets 403; strangers are sent to sign in).
PAGES = {
    "/": {"assessor", "admin", "gridworker"},
    P: {"assessor", "admin", "gridworker"},
    f"{P}/answers": {"assessor", "admin", "gridworker"},
    f"{P}/answers?question=attitude&option=oppose": {"assessor", "admin", "gridworker"},
    f"{P}/review": {"assessor", "admin", "gridworker"},
    f"{P}/risks": {"assessor", "admin"},
    f"{P}/risks/new": {"assessor", "admin"},
    f"{P}/level": {"assessor", "admin"},
    f"{P}/report.docx": {"assessor", "admin"},
    f"{P}/report.xlsx": {"assessor", "admin"},
    "/rules": {"assessor", "admin"},
    "/audit": {"admin"},
}
# Every form target, and who may post to it.
FORMS = {
    f"{P}/review/1": {"assessor", "admin"},
    f"{P}/risks": {"assessor", "admin"},
    f"{P}/risks/1": {"assessor", "admin"},
    f"{P}/risks/1/detach": {"assessor", "admin"},
    f"{P}/level": {"assessor", "admin"},
    f"{P}/texts": {"assessor", "admin"},
    "/rules": {"admin"},
}
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


@NEEDS_CJK_FONT
async def test_every_page_for_every_role(console: Console) -> None:
    stranger = await console.client()
    for path in PAGES:
        status, _ = await stranger.get(path)
        assert status == 302, path
    for name, role in (("zhang", "assessor"), ("root", "admin"), ("wang", "gridworker")):
        client = await console.client(name)
        for path, allowed in PAGES.items():
            status, body = await client.get(path)
            expected = (302 if path == "/" else 200) if role in allowed else 403
            assert status == expected, (role, path, body[:300])


@BOTH_DATABASES
async def test_every_form_checks_the_role(console: Console) -> None:
    stranger = await console.client()
    for path in FORMS:
        status, _, _ = await stranger.post(path, {}, csrf=False)
        assert status == 401, path
    for name, role in (("zhang", "assessor"), ("root", "admin"), ("wang", "gridworker")):
        client = await console.client(name)
        for path, allowed in FORMS.items():
            status, body, _ = await client.post(path, {})
            assert (status == 403) == (role not in allowed), (role, path, status, body[:200])


async def test_forms_without_the_csrf_token_change_nothing(console: Console) -> None:
    client = await console.client("zhang")
    answer = console.seeded.grievance_ids[0]
    form = {"action": "confirm", "category": "traffic"}
    for token in (None, "forged-token"):
        data = form if token is None else {**form, "csrf": token}
        status, _, _ = await client.post(f"{P}/review/{answer}", data, csrf=False)
        assert status == 400
    async with console.db.reading() as session:
        assert await session.get(Review, answer) is None
    status, _, _ = await client.post(f"{P}/review/{answer}", form)
    assert status == 302
    # Logging out is a form too: a page elsewhere cannot sign the assessor out.
    status, _, _ = await client.post("/logout", {}, csrf=False)
    assert status == 400


async def test_resident_text_is_shown_as_text(console: Console) -> None:
    client = await console.client("zhang")
    for path in (f"{P}/review", f"{P}/answers"):
        _, body = await client.get(path)
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body, path
        assert "<script>alert" not in body and "<img src=x" not in body
        assert "13812345678" not in body, "phone numbers are redacted before anyone sees them"


@BOTH_DATABASES
async def test_grid_worker_sees_only_their_grid(console: Console) -> None:
    client = await console.client("wang")
    async with console.db.reading() as session:
        rows = (await session.execute(select(Submission.receipt, Submission.grid_id))).all()
    g01 = console.seeded.project.grid_ids["G01"]
    mine = {r for r, g in rows if g == g01}
    others = {r for r, g in rows if g != g01}
    for path in (f"{P}/review?status=all", f"{P}/answers", f"{P}/answers?grid=G02"):
        _, body = await client.get(path)
        shown = set(re.findall(r"MY-RW\d\d-\d{4}", body))
        assert shown <= mine and not shown & others, path
    _, body = await client.get(P)
    assert "东风一网格" in body and "人民二网格" not in body
    assert "各类群众的态度" in body
    # A grievance of another grid cannot be decided on, nor seen through the risk pages.
    status, _, _ = await client.post(f"{P}/review/{console.seeded.grievance_ids[1]}", {"action": "note"})
    assert status == 403


async def test_alerts_nobody_could_receive_are_named_on_the_dashboard(console: Console) -> None:
    client = await console.client("zhang")
    _, body = await client.get(P)
    assert 'id="unrouted"' not in body
    async with console.db.transaction() as session:
        first_two = select(Alert.id).order_by(Alert.id).limit(2).scalar_subquery()
        await session.execute(update(Alert).where(Alert.id.in_(first_two)).values(status="unrouted"))
    _, body = await client.get(P)
    assert re.search(r"<td>无人接收</td><td>2</td>", body), "the count by state names them"
    warning = re.search(r'<p class="warning" role="alert" id="unrouted">(.*?)</p>', body, re.S)
    assert warning is not None and "有 2 条紧急情况尚无人接收" in warning[1]


@BOTH_DATABASES
async def test_sign_in_is_throttled_after_repeated_failures(console: Console) -> None:
    client = await console.client()
    for _ in range(5):
        assert await client.login("zhang", "wrong password") == 401
    assert await client.login("zhang") == 429, "even the right password waits once the limit is reached"
    assert await (await console.client()).login("root") == 302, "other accounts are not locked out"
    async with console.db.reading() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert actions.count("login.failed") == 5 and "login.throttled" in actions
    # The window passes: the account can sign in again.
    async with console.db.transaction() as session:
        from storage.models import LoginFailure

        await session.execute(update(LoginFailure).values(at=utcnow() - timedelta(hours=1)))
    assert await (await console.client()).login("zhang") == 302


async def test_sessions_expire_and_logout_ends_them(console: Console) -> None:
    client = await console.client("zhang")
    assert (await client.get(P))[0] == 200
    async with console.db.transaction() as session:
        await session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    assert (await client.get(P))[0] == 302
    client = await console.client("zhang")
    await client.get(P)
    status, _, location = await client.post("/logout", {})
    assert (status, location) == (302, "/login")
    assert (await client.get(P))[0] == 302
    async with console.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(ConsoleSession)) == 0


async def test_security_headers_on_pages_errors_and_files(console: Console) -> None:
    client = await console.client("wang")
    for path in ("/login", P, "/audit", "/static/console.css", "/p/NOPE"):
        async with client.http.get(client.url(path), allow_redirects=False) as response:
            for header in SECURITY_HEADERS:
                assert header in response.headers, (path, header)
            assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    stranger = await console.client()
    async with stranger.http.get(stranger.url("/login")) as response:
        cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_views_of_personal_data_are_audited(console: Console) -> None:
    client = await console.client("zhang")
    await client.get(f"{P}/answers?grid=G01")
    await client.get(f"{P}/review")
    await client.get(f"{P}/report.xlsx")
    async with console.db.reading() as session:
        entries = (await session.execute(select(AuditEntry.actor, AuditEntry.action))).all()
    actions = {action for actor, action in entries if actor.startswith("account:")}
    assert {"login", "view.answers", "view.review", "view.report.xlsx"} <= actions


@BOTH_DATABASES
async def test_review_to_register_to_residents(console: Console) -> None:
    """Correct a grievance, attach it to a new risk item, change the item's status: the resident is told."""
    client = await console.client("zhang")
    await client.get(f"{P}/review")
    answer = console.seeded.grievance_ids[2]
    status, _, location = await client.post(
        f"{P}/review/{answer}",
        [
            ("action", "confirm"),
            ("category", "traffic"),
            ("category", "livelihood"),
            ("note", "店主"),
            ("risk_item", "new"),
            ("next", "https://evil.example/"),
        ],
    )
    assert status == 302 and location == f"{P}/risks/new?answer={answer}&factor=traffic"
    async with console.db.reading() as session:
        review = await session.get(Review, answer)
        assert review is not None
        assert (review.status, review.categories, review.note) == (
            "confirmed",
            ["traffic", "livelihood"],
            "店主",
        )
        assert review.suggested == ["disclosure", "procedure"] and review.suggested_model == "risk-test"
    _, body = await client.get(f"{P}/review?status=confirmed")
    assert "已确认：交通出行、生计就业与经济损失，zhang" in body

    _, form = await client.get(location)
    assert f'name="answer" value="{answer}"' in form
    item = {
        "factor": "traffic",
        "title": "封路绕行",
        "stage": "construction",
        "probability": "4",
        "impact": "3",
        "mitigation": "分段施工，保留公交站",
        "department": "市交通运输局",
        "deadline": "2026-12-31",
        "status": "open",
        "answer": str(answer),
    }
    status, _, location = await client.post(f"{P}/risks", item)
    assert status == 302 and location.startswith(f"{P}/risks/1")
    _, register = await client.get(f"{P}/risks")
    assert "R-001" in register and "封路绕行" in register and "中" in register

    status, _, location = await client.post(f"{P}/risks/1", {**item, "status": "mitigating"})
    assert status == 302 and "notice=notified" in location
    async with console.db.reading() as session:
        notes = (await session.scalars(select(Notification))).all()
        from storage.models import Answer

        writer = (
            await session.execute(
                select(Submission.person_id)
                .join(Answer, Answer.submission_id == Submission.id)
                .where(Answer.id == answer)
            )
        ).scalar_one()
        assert [(n.person_id, n.status) for n in notes] == [(writer, "queued")]
        assert "封路绕行" in notes[0].text and "市交通运输局" in notes[0].text
        assert notes[0].kind == "grievance.in_progress" and notes[0].risk_item_id is not None
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert {
        "review.confirm",
        "risk.created",
        "risk.attached",
        "risk.updated",
        "risk.notified",
        "grievance.notice_queued",
    } <= set(actions)

    # Another review attaches to the existing item; a bad item number is refused.
    other = console.seeded.grievance_ids[4]
    status, _, _ = await client.post(f"{P}/review/{other}", {"action": "not_grievance", "risk_item": "1"})
    assert status == 302
    status, body, _ = await client.post(f"{P}/review/{other}", {"action": "note", "risk_item": "99"})
    assert status == 400 and "没有这个风险项" in body
    async with console.db.reading() as session:
        links = (await session.scalars(select(RiskItemAnswer.answer_id))).all()
        item_row = (await session.scalars(select(RiskItem))).one()
    assert sorted(links) == sorted([answer, other]) and item_row.status == "mitigating"


async def test_risk_form_mistakes_are_listed(console: Console) -> None:
    client = await console.client("zhang")
    await client.get(f"{P}/risks/new")
    status, body, _ = await client.post(f"{P}/risks", {"factor": "nope", "probability": "9", "impact": "x"})
    assert status == 400
    for message in (
        "请选择风险因素",
        "请填写风险项名称",
        "发生概率须为 1 到 5 的整数",
        "影响程度须为 1 到 5 的整数",
    ):
        assert message in body


async def test_level_sign_off_needs_a_reason_to_override(console: Console) -> None:
    client = await console.client("zhang")
    _, page = await client.get(f"{P}/level")
    # 24 seeded: 6 of 24 oppose = 25% → medium by the default bands; no risk items yet.
    assert "反对率 25.0% &gt; 20%" in page
    status, body, _ = await client.post(
        f"{P}/level", {"level_before": "high", "level_after": "low", "reason": ""}
    )
    assert status == 400 and "理由" in body
    status, _, _ = await client.post(f"{P}/level", {"level_before": "medium", "level_after": "medium"})
    assert status == 302
    status, _, _ = await client.post(
        f"{P}/level", {"level_before": "medium", "level_after": "low", "reason": "补偿方案已调整并公示"}
    )
    assert status == 302
    async with console.db.reading() as session:
        signed = (await session.scalars(select(LevelSignoff).order_by(LevelSignoff.id))).all()
    assert [(s.level_after, s.overridden, s.signed_by_name) for s in signed] == [
        ("medium", False, "zhang"),
        ("low", True, "zhang"),
    ]
    assert signed[1].reasoning["rules_version"] == 1 and signed[1].reasoning["figures"]["submitted"] == 24


async def test_rules_are_versioned_with_their_source(console: Console) -> None:
    import json

    client = await console.client("root")
    await client.get("/rules")
    status, body, _ = await client.post("/rules", {"rules": "{not json", "note": "x"})
    assert status == 400 and "JSON" in body
    changed = {**DEFAULT_RULES, "opposition_bands": [{"above": 0.3, "level": "high"}], "matrix_source": ""}
    status, body, _ = await client.post("/rules", {"rules": json.dumps(changed), "note": "试行"})
    assert status == 400 and "matrix_source" in body
    changed["matrix_source"] = "本市2026年试行办法"
    status, _, _ = await client.post("/rules", {"rules": json.dumps(changed), "note": "本市试行办法第5条"})
    assert status == 302
    _, page = await client.get("/rules")
    assert "当前第 2 版" in page and "本市2026年试行办法" in page
    assessor = await console.client("zhang")
    _, level = await assessor.get(f"{P}/level")
    assert "第 2 版规则" in level and "反对率 25.0% ≤ 30%" in level


async def test_texts_are_saved_for_the_report(console: Console) -> None:
    client = await console.client("zhang")
    await client.get(f"{P}/level")
    status, _, _ = await client.post(
        f"{P}/texts", {"overview": "人民路拓宽工程<b>概况</b>", "legality": "合法"}
    )
    assert status == 302
    _, page = await client.get(f"{P}/level")
    assert "人民路拓宽工程&lt;b&gt;概况&lt;/b&gt;" in page


@NEEDS_CJK_FONT
@pytest.mark.parametrize("kind", ["docx", "xlsx"])
async def test_report_downloads(console: Console, kind: str) -> None:
    client = await console.client("zhang")
    async with client.http.get(client.url(f"{P}/report.{kind}")) as response:
        body = await response.read()
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
    assert body[:2] == b"PK"


async def test_a_report_without_a_chinese_font_is_refused_with_what_to_install(
    console: Console, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MINYI_CJK_FONT", str(tmp_path / "no-such-font.ttc"))
    charts.cjk_font_file.cache_clear()  # read once per process; this test changes it
    charts._font.cache_clear()
    try:
        client = await console.client("zhang")
        async with client.http.get(client.url(f"{P}/report.docx")) as response:
            page = await response.text()
            assert response.status == 503
        assert "fonts-noto-cjk" in page and "Content-Disposition" not in response.headers
    finally:
        monkeypatch.undo()
        charts.cjk_font_file.cache_clear()
        charts._font.cache_clear()
