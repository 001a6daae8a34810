"""The assessment file read back: every section of the outline, tables and figures equal to the database,
charts as images, redacted appendices; the Excel file redacted and safe from formula injection."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from pathlib import Path

import docx
import openpyxl
from sqlalchemy import func, insert, select

from console.report import OUTLINE
from storage import accounts
from storage.database import Database
from storage.models import Answer, AnswerTag, Grid, LevelSignoff, Submission
from tests.conftest import NEEDS_CJK_FONT
from tests.console.conftest import BOTH_DATABASES, password_hash
from tests.console.seeding import EXAMPLE_SURVEY, seed

ROOT = Path(__file__).resolve().parents[2]
PHONE = "13812345678"
FORMULA = '=HYPERLINK("http://x.example","点我")'


async def minyi(database_url: str, *args: str, **settings: str) -> tuple[int, str]:
    """`minyi ARGS` in a process of its own with only the database and `settings` (MINYI_*) set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")} | settings
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minyi.cli",
        *args,
        cwd=ROOT,
        env={**env, "MINYI_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode()


async def _prepare(db: Database) -> dict[str, int]:
    """40 questionnaires, a phone number and a formula-like grievance, a risk item, a signed level."""
    seeded = await seed(db, 40, evil_text=f"{FORMULA} 我的电话{PHONE}")
    async with db.transaction() as session:
        first = (await session.scalars(select(Submission.id).order_by(Submission.id).limit(1))).one()
        await session.execute(
            insert(Answer),
            [
                {
                    "submission_id": first,
                    "question_code": "phone",
                    "value": {"v": PHONE},
                    "raw_text": PHONE,
                    "seq": 30,
                }
            ],
        )
        await accounts.create_account(session, "zhang", "assessor", password_hash("zhang"))
    from console import assessment
    from console.auth import SignedIn
    from storage import repository as repo

    who = SignedIn(1, "zhang", "assessor", "", "", None)
    async with db.transaction() as session:
        project = await repo.project_by_code(session, "RW")
        assert project is not None
        fields, errors = assessment.read_item_form(
            {
                "factor": "compensation",
                "title": "补偿标准偏低",
                "stage": "preparation",
                "probability": "4",
                "impact": "4",
                "mitigation": "按市场价重新评估",
                "department": "区征收办",
                "deadline": "2026-12-20",
                "status": "mitigating",
                "residual_probability": "2",
                "residual_impact": "3",
            }
        )
        assert fields is not None, errors
        await assessment.create_item(session, who, project, fields, seeded.grievance_ids[:3])
        await session.flush()
        rules = await assessment.current_rules(session)
        from console import levels

        proposal = levels.propose(rules.rules, 0.25, 40, [])
        await assessment.sign_off(
            session,
            who,
            project,
            rules,
            proposal,
            level_before="medium",
            level_after="low",
            reason="措施已落实",
            figures={},
        )
    return dict(Counter(seeded.attitudes))


def _table_with(document: docx.document.Document, first_header: str) -> list[list[str]]:
    for table in document.tables:
        rows = [[cell.text for cell in row.cells] for row in table.rows]
        if rows and rows[0][0] == first_header:
            return rows
    raise AssertionError(f"no table starting with {first_header}")


@NEEDS_CJK_FONT
@BOTH_DATABASES
async def test_word_file_follows_the_outline_and_matches_the_database(db: Database, tmp_path: Path) -> None:
    attitudes = await _prepare(db)
    out = tmp_path / "report.docx"
    code, output = await minyi(
        db.url.render_as_string(hide_password=False), "report", "--project", "RW", "--out", str(out)
    )
    assert code == 0, output
    document = docx.Document(str(out))
    headings = [
        p.text for p in document.paragraphs if p.style is not None and p.style.name.startswith("Heading")
    ]
    for section in OUTLINE:
        assert section in headings, section
    assert headings.index(OUTLINE[0]) < headings.index(OUTLINE[5]) < headings.index(OUTLINE[8])

    # Participation by grid, computed here independently from the submissions table.
    async with db.reading() as session:
        counted = dict(
            (
                await session.execute(
                    select(Grid.code, func.count())
                    .join(Submission, Submission.grid_id == Grid.id)
                    .where(Submission.status == "submitted")
                    .group_by(Grid.code)
                )
            ).all()
        )
        proxies = await session.scalar(select(func.count()).where(Submission.entered_by_id.is_not(None)))
    rows = _table_with(document, "网格")
    assert rows[0] == ["网格", "户数", "已开始", "已提交", "回收率", "本人填写", "网格员代填"]
    by_grid = {row[0].split()[0]: row for row in rows[1:-1]}
    for grid, n in counted.items():
        assert by_grid[grid][3] == str(n) and by_grid[grid][4] == f"{n / 100:.1%}"
    assert rows[-1][0] == "合计" and rows[-1][3] == "40" and rows[-1][6] == str(proxies)

    attitude = {row[0]: int(row[1]) for row in _table_with(document, "态度")[1:]}
    names = {"support": "支持", "conditional": "有条件支持", "oppose": "不支持", "indifferent": "无所谓"}
    assert attitude == {names[k]: attitudes.get(k, 0) for k in names}
    parties = _table_with(document, "群众类别")[1:]
    assert sum(int(row[1]) for row in parties) == 40, "every questionnaire is in one group"
    assert sum(int(row[4]) for row in parties) == attitudes.get("oppose", 0)
    assert {row[0] for row in parties} <= {
        "房子在征收范围内（产权人）",
        "租住在征收范围内",
        "在路边开店、做生意",
        "住在附近",
    }
    text = "\n".join(p.text for p in document.paragraphs)
    support = (attitudes["support"] + attitudes["conditional"]) / 40
    assert f"支持率（支持与有条件支持之和）为 {support:.1%}" in text

    risks = _table_with(document, "编号")
    assert risks[1][:2] == ["R-001", "征地拆迁补偿安置"] and risks[1][4:7] == ["4", "4", "高"]
    assert risks[1][7] == "3/3"
    mitigation = next(r for r in document.tables if r.rows[0].cells[2].text == "防范化解措施")
    assert [c.text for c in mitigation.rows[1].cells][2:5] == ["按市场价重新评估", "区征收办", "2026-12-20"]
    assert "签署：zhang" in text and "调整了系统建议，理由：措施已落实" in text
    for word in ("合法性", "合理性", "可行性", "可控性", "应急处置预案"):
        assert word in text

    # Appendix one: every question of the questionnaire; appendix two: redacted grievances only.
    for line in EXAMPLE_SURVEY.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("text:"):
            assert line.split("text:", 1)[1].strip() in text
    grievances = _table_with(document, "序号")
    async with db.reading() as session:
        tagged = await session.scalar(
            select(func.count())
            .select_from(AnswerTag)
            .join(Answer)
            .join(Submission)
            .where(Submission.status == "submitted")
        )
    assert len(grievances) - 1 == tagged
    whole = text + "".join(c.text for t in document.tables for r in t.rows for c in r.cells)
    assert PHONE not in whole and "[手机号]" in whole
    assert len(document.inline_shapes) >= 4, "charts are embedded as images"
    async with db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(LevelSignoff)) == 1


@BOTH_DATABASES
async def test_excel_file_is_redacted_and_never_runs_formulas(db: Database, tmp_path: Path) -> None:
    await _prepare(db)
    out = tmp_path / "data.xlsx"
    code, output = await minyi(
        db.url.render_as_string(hide_password=False),
        "report",
        "--project",
        "RW",
        "--out",
        str(out),
        "--format",
        "xlsx",
    )
    assert code == 0, output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["参与情况", "问卷回答", "群众意见（已脱敏）", "风险清单", "态度"]
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    texts = [str(c.value) for c in cells if c.value is not None]
    assert not any(PHONE in t for t in texts), "no phone number, neither as an answer nor inside a grievance"
    assert all(c.data_type != "f" for c in cells)
    assert not any(t.startswith(("=", "+", "-", "@")) for t in texts)
    assert any(t.startswith("'" + FORMULA) for t in texts)
    answers = book["问卷回答"]
    header = [c.value for c in answers[1]]
    assert "请输入您的手机或座机号码。" not in header and "总的来说，您对这个工程是什么态度？" in header
    assert answers.max_row == 41
