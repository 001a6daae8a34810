"""The assessment file: gather every figure from the database, then write Word (.docx) or Excel (.xlsx).

The Word file follows the national report outline (NDRC 2012/2013): basic facts, risk survey and how
opinions were adopted, risk identification and estimation, mitigation, level after mitigation, conclusion,
appendices. Every number comes from `console.stats`, the same functions the dashboard uses.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import assessment, charts, levels, stats, texts, xlsx
from console.stats import stored_value
from console.survey import ATTITUDE_LABELS, SurveyInfo
from nlp.redact import redact
from storage.models import (
    Answer,
    AnswerTag,
    Grid,
    LevelRules,
    LevelSignoff,
    Project,
    Submission,
    SubmissionStatus,
)

PLACEHOLDER = "（待评估人员填写）"
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class AnswerRow:
    """One submitted questionnaire for the Excel file: choices in words, free text redacted, no phone."""

    receipt: str
    grid: str
    channel: str
    submitted_at: datetime | None
    values: dict[str, str]


@dataclass(frozen=True)
class ReportData:
    project: Project
    overview: stats.Overview
    items: tuple[assessment.ItemRow, ...]
    rules: LevelRules
    proposal: levels.Proposal
    signoff: LevelSignoff | None
    texts: dict[str, str]
    zone: tzinfo
    answer_rows: tuple[AnswerRow, ...] = field(default=())

    @property
    def survey(self) -> SurveyInfo:
        return self.overview.survey.survey

    def figures(self) -> dict[str, Any]:
        """The numbers the proposal used, kept with a sign-off."""
        total = self.overview.participation.total
        attitude = self.overview.opinions.attitude
        return {
            "households": total.households,
            "submitted": total.submitted,
            "proxy": total.proxy,
            "attitude_answered": attitude.answered if attitude else 0,
            "attitudes": dict(attitude.standard) if attitude else {},
            "support_rate": attitude.support_rate if attitude else None,
            "opposition_rate": attitude.opposition_rate if attitude else None,
            "risk_items": {r.code: [r.level, r.residual] for r in self.items},
            "computed_at": self.overview.computed_at.isoformat(),
        }

    def local(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(self.zone).strftime(fmt) if value else ""


async def gather(
    session: AsyncSession, project: Project, zone: tzinfo, *, answers: bool = False
) -> ReportData:
    """Everything the file shows, read in one transaction so the figures agree with each other."""
    view = await stats.overview(session, project, None, zone)
    rules = await assessment.current_rules(session)
    items = await assessment.item_rows(session, project.id, rules.rules)
    attitude = view.opinions.attitude
    proposal = levels.propose(
        rules.rules,
        attitude.opposition_rate if attitude else None,
        attitude.answered if attitude else 0,
        [row.estimate for row in items],
    )
    signed = await assessment.signoffs(session, project.id)
    return ReportData(
        project=project,
        overview=view,
        items=tuple(items),
        rules=rules,
        proposal=proposal,
        signoff=signed[0] if signed else None,
        texts=await assessment.report_texts(session, project.id),
        zone=zone,
        answer_rows=tuple(await _answer_rows(session, project, view.survey.survey, zone)) if answers else (),
    )


async def _answer_rows(
    session: AsyncSession, project: Project, survey: SurveyInfo, zone: tzinfo
) -> list[AnswerRow]:
    rows = (
        await session.execute(
            select(Submission.id, Submission.receipt, Grid.code, Submission.channel, Submission.submitted_at)
            .outerjoin(Grid, Grid.id == Submission.grid_id)
            .where(Submission.project_id == project.id, Submission.status == SubmissionStatus.SUBMITTED)
            .order_by(Submission.id)
        )
    ).all()
    kinds = {q.id: q for q in survey.questions}
    values: dict[int, dict[str, str]] = {}
    query = (
        select(
            Answer.submission_id,
            Answer.question_code,
            cast(Answer.value, Text),
            Answer.raw_text,
            AnswerTag.redacted,
        )
        .join(Submission, Submission.id == Answer.submission_id)
        .outerjoin(AnswerTag, AnswerTag.answer_id == Answer.id)
        .where(Submission.project_id == project.id, Submission.status == SubmissionStatus.SUBMITTED)
    )
    connection = await session.connection()
    for submission_id, code, raw, raw_text, redacted in await connection.execute(query):
        question = kinds.get(code)
        if question is None or question.kind == "phone":
            continue  # a contact number never leaves the system in a file
        if question.kind == "text":
            shown = (
                redacted if redacted is not None else redact(str(stored_value(raw) or raw_text or "")).text
            )
        else:
            shown = question.label(stored_value(raw))
        values.setdefault(submission_id, {})[code] = shown
    return [
        AnswerRow(receipt, grid or "", texts.CHANNELS.get(channel, channel), at, values.get(sid, {}))
        for sid, receipt, grid, channel, at in rows
    ]


# --- Word ----------------------------------------------------------------------------------------------

OUTLINE = (
    "一、基本情况",
    "二、风险调查情况",
    "三、风险识别与估计",
    "四、风险防范化解措施",
    "五、落实措施后的风险等级",
    "六、评估结论",
    "附件一：调查问卷",
    "附件二：群众意见汇总（已脱敏）",
    "附件三：数据来源与计算方法",
)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


class _Doc:
    """A thin writer over python-docx: Chinese fonts, headings, fast tables, images."""

    def __init__(self) -> None:
        from docx import Document
        from docx.oxml.ns import qn
        from docx.shared import Pt

        self.qn = qn
        self.document = Document()
        styles = self.document.styles
        for name, font, size in (
            ("Normal", "宋体", 11),
            ("Heading 1", "黑体", 15),
            ("Heading 2", "黑体", 13),
            ("Title", "黑体", 20),
        ):
            style = styles[name]
            style.font.name = font
            style.font.size = Pt(size)
            fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
            fonts.set(qn("w:eastAsia"), font)

        # Looking a style up by name walks every style each time; thousands of rows made that the slow part.
        self.style_ids = {name: styles[name].style_id for name in ("Heading 1", "Heading 2", "Table Grid")}

    def heading(self, text: str, level: int = 1) -> None:
        paragraph = self.document.add_paragraph(text)
        paragraph._p.style = self.style_ids[f"Heading {level}"]

    def para(self, text: str, bold: bool = False) -> None:
        paragraph = self.document.add_paragraph()
        run = paragraph.add_run(text)
        run.bold = bold

    def image(self, png: bytes, width_cm: float = 15.5) -> None:
        from docx.shared import Cm

        self.document.add_picture(io.BytesIO(png), width=Cm(width_cm))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A grid table; rows are written as XML directly, so thousands of rows take well under a second."""
        from docx.oxml import OxmlElement

        table = self.document.add_table(rows=1, cols=len(header))
        table._tbl.tblStyle_val = self.style_ids["Table Grid"]
        for cell, text in zip(table.rows[0].cells, header, strict=True):
            cell.text = ""
            cell.paragraphs[0].add_run(str(text)).bold = True
        tbl = table._tbl
        qn = self.qn
        for row in rows:
            tr = OxmlElement("w:tr")
            for value in row:
                tc = OxmlElement("w:tc")
                for line in str(value).split("\n") or [""]:
                    p = OxmlElement("w:p")
                    r = OxmlElement("w:r")
                    t = OxmlElement("w:t")
                    t.set(qn("xml:space"), "preserve")
                    t.text = _xml_safe(line)
                    r.append(t)
                    p.append(r)
                    tc.append(p)
                tr.append(tc)
            tbl.append(tr)

    def save(self) -> bytes:
        out = io.BytesIO()
        self.document.save(out)
        return out.getvalue()


def _xml_safe(text: str) -> str:
    # Control characters are not allowed in XML; a resident may have pasted one.
    return xlsx.clean(text)


def _text(data: ReportData, key: str) -> str:
    return data.texts.get(key, "").strip() or PLACEHOLDER


def build_docx_bytes(data: ReportData) -> bytes:
    view = data.overview
    part = view.participation
    total = part.total
    opinions = view.opinions
    attitude = opinions.attitude
    doc = _Doc()
    doc.document.add_heading(f"{data.project.title}社会稳定风险评估报告", level=0)
    doc.para(
        f"项目编号：{data.project.code}　　数据截至：{data.local(view.computed_at)}　　"
        f"问卷：{data.survey.title}（第 {data.survey.version} 版）　　等级规则：第 {data.rules.version} 版"
    )

    doc.heading(OUTLINE[0])
    doc.heading("（一）项目概况", 2)
    doc.para(_text(data, "overview"))
    doc.heading("（二）评估依据", 2)
    doc.para(_text(data, "basis"))
    doc.para(f"风险等级判定依据：{data.rules.rules.get('overall_source', '')}")
    doc.heading("（三）评估主体", 2)
    doc.para(_text(data, "assessor"))
    doc.heading("（四）评估过程和方法", 2)
    doc.para(_text(data, "process"))
    doc.para(
        f"风险调查采用问卷调查（群众本人在手机上填写）与网格员入户代填相结合的方式，"
        f"覆盖 {len(part.grids)} 个网格、{total.households} 户，收回有效问卷 {total.submitted} 份"
        f"（本人填写 {total.self_answered} 份，网格员代填 {total.proxy} 份），回收率 {_pct(total.rate)}。"
        f"群众文字意见共 {len(view.grievances)} 条，评估人员已复核 "
        f"{sum(1 for g in view.grievances if g.review_status != 'pending')} 条。"
    )

    doc.heading(OUTLINE[1])
    doc.heading("（一）调查过程与参与情况", 2)
    doc.table(
        ["网格", "户数", "已开始", "已提交", "回收率", "本人填写", "网格员代填"],
        [
            [
                f"{g.code} {g.name}".strip(),
                g.households,
                g.started,
                g.submitted,
                _pct(g.rate),
                g.self_answered,
                g.proxy,
            ]
            for g in (*part.grids, total)
        ],
    )
    if view.per_day:
        doc.image(charts.png_columns("每日提交问卷数", [(d.strftime("%m-%d"), n) for d, n in view.per_day]))
    doc.heading("（二）群众态度", 2)
    if attitude is not None:
        rows = stats.standard_attitudes(attitude)
        doc.table(["态度", "人数", "占比"], [[label, n, _pct(share)] for _, label, n, share in rows])
        doc.image(
            charts.png_bars(
                charts.BarChart(
                    f"群众态度（{attitude.answered} 份有效回答）",
                    tuple(charts.Bar(label, n, f"{n}（{share:.1%}）") for _, label, n, share in rows),
                )
            )
        )
        doc.para(
            f"支持率（支持与有条件支持之和）为 {_pct(attitude.support_rate)}，"
            f"反对率（不支持）为 {_pct(attitude.opposition_rate)}，"
            f"分母为回答态度题的 {attitude.answered} 份问卷。"
        )
    else:
        doc.para("问卷中没有态度题，未统计支持率和反对率。")
    doc.heading("（三）群众关心的问题", 2)
    for d in opinions.distributions:
        if d.kind == "text":
            continue
        doc.para(f"{d.text}（{d.answered} 份回答）", bold=True)
        doc.table(["选项", "人数", "占比"], [[o.label, o.count, _pct(o.share)] for o in d.options])
    for concern in opinions.concerns:
        doc.image(
            charts.png_bars(
                charts.BarChart(
                    concern.text,
                    tuple(
                        charts.Bar(o.label, o.count, f"{o.count}（{o.share:.0%}）") for o in concern.options
                    ),
                    charts.PALETTE[2],
                )
            )
        )
    doc.heading("（四）各方面意见及其采纳情况", 2)
    doc.para(_text(data, "adoption"))
    if view.parties:
        doc.para("各类受影响群众的态度：", bold=True)
        doc.table(
            ["群众类别", "回答数", "支持", "有条件支持", "不支持", "无所谓", "支持率", "反对率"],
            [
                [
                    p.label,
                    p.answered,
                    *(p.standard.get(c, 0) for c in ATTITUDE_LABELS),
                    _pct(p.support_rate),
                    _pct(p.opposition_rate),
                ]
                for p in view.parties
            ],
        )
    doc.para("各类意见及采纳情况：", bold=True)
    by_factor: dict[str, list[assessment.ItemRow]] = {}
    for row in data.items:
        by_factor.setdefault(row.item.factor, []).append(row)
    examples: dict[str, list[str]] = {}
    for g in view.grievances:
        for code in g.categories:
            examples.setdefault(code, [])
            if len(examples[code]) < 2:
                examples[code].append(g.redacted[:80])
    doc.table(
        ["意见类别", "意见条数", "涉及问卷", "代表性意见（已脱敏）", "采纳情况"],
        [
            [
                c.name,
                c.grievances,
                c.residents,
                "\n".join(examples.get(c.code, [])),
                "\n".join(
                    f"列入 {r.code}：{r.item.mitigation or '措施待定'}"
                    f"（{texts.ITEM_STATUSES.get(r.item.status, '')}）"
                    for r in by_factor.get(c.code, [])
                )
                or "已记录，未单列风险项",
            ]
            for c in view.categories
        ],
    )
    if view.categories:
        doc.image(
            charts.png_bars(
                charts.BarChart(
                    "意见涉及的风险类别（条数）",
                    tuple(
                        charts.Bar(c.name, c.grievances, f"{c.grievances} 条 / {c.residents} 人")
                        for c in view.categories
                    ),
                    charts.PALETTE[3],
                )
            )
        )

    doc.heading(OUTLINE[2])
    doc.para(
        "风险等级按发生概率（1–5）× 影响程度（1–5）矩阵确定。"
        f"依据：{data.rules.rules.get('matrix_source', '')}"
    )
    doc.table(
        ["编号", "风险因素", "风险描述", "阶段", "概率", "影响", "等级", "意见/问卷"],
        [
            [
                r.code,
                r.factor_name,
                f"{r.item.title}\n{r.item.description}".strip(),
                texts.STAGES.get(r.item.stage, r.item.stage),
                r.item.probability,
                r.item.impact,
                levels.level_name(r.level),
                f"{r.grievances}/{r.residents}",
            ]
            for r in data.items
        ],
    )
    if not data.items:
        doc.para("风险清单暂无条目。")

    doc.heading(OUTLINE[3])
    doc.table(
        ["编号", "风险项", "防范化解措施", "责任部门", "完成期限", "状态"],
        [
            [
                r.code,
                r.item.title,
                r.item.mitigation or "—",
                r.item.department or "—",
                r.item.deadline.isoformat() if r.item.deadline else "—",
                texts.ITEM_STATUSES.get(r.item.status, ""),
            ]
            for r in data.items
        ],
    )
    doc.para(f"应急处置预案：{_text(data, 'emergency')}")

    doc.heading(OUTLINE[4])
    doc.table(
        ["编号", "风险项", "措施落实前", "措施落实后"],
        [
            [r.code, r.item.title, levels.level_name(r.level), levels.level_name(r.residual)]
            for r in data.items
        ],
    )
    doc.para("系统按规则提出的建议等级及理由：", bold=True)
    for step in data.proposal.steps:
        doc.para(step)
    doc.table(
        ["", "措施落实前", "措施落实后"],
        [
            ["系统建议", levels.level_name(data.proposal.before), levels.level_name(data.proposal.after)],
            [
                "评估人员确认",
                levels.level_name(data.signoff.level_before) if data.signoff else "未签署",
                levels.level_name(data.signoff.level_after) if data.signoff else "未签署",
            ],
        ],
    )
    if data.signoff is not None:
        s = data.signoff
        doc.para(
            f"签署：{s.signed_by_name}，{data.local(s.signed_at)}；"
            + (f"调整了系统建议，理由：{s.reason}" if s.overridden else "确认系统建议。")
            + (f"（签署时规则第 {s.reasoning.get('rules_version', '')} 版）" if s.reasoning else "")
        )
    else:
        doc.para("风险等级尚未由评估人员签署，本报告为草稿。", bold=True)

    doc.heading(OUTLINE[5])
    main = sorted(data.items, key=lambda r: (-levels.LEVELS.index(r.level), r.item.number))[:5]
    doc.para(
        "主要风险因素："
        + ("；".join(f"{r.code} {r.item.title}（{levels.level_name(r.level)}）" for r in main) or "无")
    )
    for key in ("legality", "reasonableness", "feasibility", "controllability"):
        doc.para(f"{assessment.TEXT_FIELDS[key]}：{_text(data, key)}")
    final = data.signoff.level_after if data.signoff else data.proposal.after
    doc.para(
        f"风险等级：落实防范化解措施后为{levels.level_name(final)}风险"
        + ("" if data.signoff else "（系统建议，待签署）")
        + "。"
    )
    doc.para(
        "主要措施："
        + (
            "；".join(
                f"{r.item.mitigation}（{r.item.department or '责任部门待定'}）"
                for r in data.items
                if r.item.mitigation
            )
            or "（待制定）"
        )
    )
    doc.para(f"应急处置预案：{_text(data, 'emergency')}")
    signer = (
        f"{data.signoff.signed_by_name}　{data.local(data.signoff.signed_at, '%Y年%m月%d日')}"
        if data.signoff
        else ""
    )
    doc.para(f"评估人员签署：{signer or '＿＿＿＿＿＿'}")

    doc.heading(OUTLINE[6])
    doc.para(f"{data.survey.title}（第 {data.survey.version} 版）", bold=True)
    if data.survey.intro:
        doc.para(data.survey.intro.strip())
    if data.survey.notice:
        doc.para(data.survey.notice.strip())
    for number, q in enumerate(data.survey.questions, start=1):
        kind = {
            "single": "单选",
            "multi": "多选",
            "scale": "打分",
            "text": "文字",
            "number": "数字",
            "phone": "电话",
        }
        doc.para(f"{number}. {q.text}（{kind.get(q.kind, q.kind)}{'' if q.required else '，可跳过'}）")
        if q.options:
            doc.para("　　" + "　".join(f"□ {label}" for _, label in q.options))

    doc.heading(OUTLINE[7])
    doc.table(
        ["序号", "回执号", "网格", "风险类别", "复核", "意见（已脱敏）"],
        [
            [
                i,
                g.receipt,
                g.grid_code,
                "、".join(stats.category_name(c) for c in g.categories) or "—",
                texts.REVIEW_STATUSES.get(g.review_status, g.review_status),
                g.redacted,
            ]
            for i, g in enumerate(view.grievances, start=1)
        ],
    )

    doc.heading(OUTLINE[8])
    for line in _method_notes(data):
        doc.para(line)
    return doc.save()


def _method_notes(data: ReportData) -> list[str]:
    return [
        f"本报告所有数字于 {data.local(data.overview.computed_at)} 由系统从调查数据库中直接计算，"
        "与评估系统“项目概况”页面使用同一计算方法，可按回执号追溯到每份问卷。",
        "有效问卷：已确认提交、未被本人撤回的问卷；已开始：同意告知书后至少进入第一题的问卷（不含撤回）。",
        "回收率 = 已提交问卷数 ÷ 网格登记户数。代填：网格员入户代为填写（渠道“visit”），与本人填写分别统计。",
        "支持率 =（支持 + 有条件支持）÷ 回答态度题的问卷数；反对率 = 不支持 ÷ 回答态度题的问卷数。",
        "意见类别：经评估人员复核的，以复核结论为准；尚未复核的，采用模型建议（仅供参考）；标为“不是诉求”的不计。",
        "群众文字意见在进入本报告前已去除姓名、电话、身份证号、银行卡号、车牌和详细地址；联系电话不出现在任何导出文件中。",
        f"风险等级规则第 {data.rules.version} 版（{data.rules.note}），由 {data.rules.created_by or '系统'} "
        f"于 {data.local(data.rules.created_at)} 发布。",
    ]


# --- Excel ---------------------------------------------------------------------------------------------


def safe_cell(value: object) -> str | int | float:
    """A value a spreadsheet shows and never evaluates: text starting like a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int | float):
        return value
    text = _xml_safe(str(value))
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def build_xlsx_bytes(data: ReportData) -> bytes:
    book = xlsx.Workbook()

    def sheet(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        book.add_sheet(
            title, [[safe_cell(h) for h in header], *([safe_cell(v) for v in row] for row in rows)]
        )

    view = data.overview
    part = view.participation
    sheet(
        "参与情况",
        ["网格", "名称", "户数", "已开始", "已提交", "回收率", "本人填写", "网格员代填"],
        [
            [
                g.code,
                g.name,
                g.households,
                g.started,
                g.submitted,
                g.rate if g.rate is not None else "",
                g.self_answered,
                g.proxy,
            ]
            for g in (*part.grids, part.total)
        ],
    )
    questions = [q for q in data.survey.questions if q.kind != "phone"]
    sheet(
        "问卷回答",
        ["回执号", "网格", "填写方式", "提交时间", *[q.text for q in questions]],
        [
            [
                r.receipt,
                r.grid,
                r.channel,
                data.local(r.submitted_at),
                *[r.values.get(q.id, "") for q in questions],
            ]
            for r in data.answer_rows
        ],
    )
    sheet(
        "群众意见（已脱敏）",
        ["回执号", "网格", "题目", "紧急", "信号", "模型建议", "复核", "确认类别", "复核人", "意见"],
        [
            [
                g.receipt,
                g.grid_code,
                g.question_id,
                g.urgent,
                "、".join(texts.signal_name(s) for s in g.signals),
                "、".join(stats.category_name(c) for c in g.model_categories or ()),
                texts.REVIEW_STATUSES.get(g.review_status, g.review_status),
                "、".join(stats.category_name(c) for c in g.confirmed),
                g.reviewer,
                g.redacted,
            ]
            for g in view.grievances
        ],
    )
    sheet(
        "风险清单",
        [
            "编号",
            "风险因素",
            "名称",
            "描述",
            "阶段",
            "概率",
            "影响",
            "等级",
            "措施",
            "责任部门",
            "期限",
            "状态",
            "措施后等级",
            "意见数",
            "问卷数",
        ],
        [
            [
                r.code,
                r.factor_name,
                r.item.title,
                r.item.description,
                texts.STAGES.get(r.item.stage, ""),
                r.item.probability,
                r.item.impact,
                levels.level_name(r.level),
                r.item.mitigation,
                r.item.department,
                r.item.deadline.isoformat() if r.item.deadline else "",
                texts.ITEM_STATUSES.get(r.item.status, ""),
                levels.level_name(r.residual),
                r.grievances,
                r.residents,
            ]
            for r in data.items
        ],
    )
    attitude = view.opinions.attitude
    sheet(
        "态度",
        ["态度", "人数", "占比"],
        [[label, n, share] for _, label, n, share in stats.standard_attitudes(attitude)] if attitude else [],
    )
    return book.save()
