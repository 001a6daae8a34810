"""The console's pages: projects, dashboard, answers, review queue, risk register, level, rules, report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console import assessment, charts, report, stats
from console.assessment import ChangeError
from console.auth import SignedIn
from console.survey import ATTITUDE_LABELS
from console.web import (
    ADMINS,
    ALL_ROLES,
    ASSESSORS,
    CONFIG_KEY,
    DB_KEY,
    audit_view,
    changing,
    check_csrf,
    load_project,
    local_path,
    not_found,
    render,
    requires,
    signed_in,
)
from nlp import taxonomy
from storage.models import AuditEntry, Grid, Project, ReviewStatus, Submission, SubmissionStatus

PAGE_SIZE = 50


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", projects)
    r.add_get("/p/{code}", dashboard)
    r.add_get("/p/{code}/answers", answers)
    r.add_get("/p/{code}/review", review_queue)
    r.add_post("/p/{code}/review/{answer_id:\\d+}", review_decide)
    r.add_get("/p/{code}/risks", risks)
    r.add_get("/p/{code}/risks/new", risk_new)
    r.add_post("/p/{code}/risks", risk_create)
    r.add_get("/p/{code}/risks/{number:\\d+}", risk_detail)
    r.add_post("/p/{code}/risks/{number:\\d+}", risk_update)
    r.add_post("/p/{code}/risks/{number:\\d+}/detach", risk_detach)
    r.add_get("/p/{code}/level", level_page)
    r.add_post("/p/{code}/level", level_sign)
    r.add_post("/p/{code}/texts", texts_save)
    r.add_get("/p/{code}/report.docx", report_docx)
    r.add_get("/p/{code}/report.xlsx", report_xlsx)
    r.add_get("/rules", rules_page)
    r.add_post("/rules", rules_add)
    r.add_get("/audit", audit_page)


def _scope(who: SignedIn) -> stats.Scope:
    return who.grid_ids


async def _grids(session: AsyncSession, project: Project, scope: stats.Scope) -> Sequence[Grid]:
    query = select(Grid).where(Grid.project_id == project.id).order_by(Grid.code)
    if scope is not None:
        query = query.where(Grid.id.in_(sorted(scope)))
    return (await session.scalars(query)).all()


# --- projects and dashboard ------------------------------------------------------------------------------


@requires(*ALL_ROLES)
async def projects(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    async with request.app[DB_KEY].reading() as session:
        rows = (await session.scalars(select(Project).order_by(Project.created_at.desc()))).all()
        if who.grid_ids is not None:
            allowed = set(
                (
                    await session.scalars(select(Grid.project_id).where(Grid.id.in_(sorted(who.grid_ids))))
                ).all()
            )
            rows = [p for p in rows if p.id in allowed]
    if len(rows) == 1:
        raise web.HTTPFound(f"/p/{rows[0].code}")
    return render(request, "projects.html", projects=rows)


def _answers_link(project: Project, **filters: str) -> str:
    from urllib.parse import urlencode

    return f"/p/{project.code}/answers?" + urlencode(filters)


def _dashboard_charts(project: Project, view: stats.Overview) -> dict[str, Any]:
    result: dict[str, Any] = {}
    opinions = view.opinions
    if opinions.attitude is not None:
        attitude = opinions.attitude
        inverse = {std: code for code, std in _attitude_map(view).items()}
        result["attitude"] = charts.svg_bars(
            charts.BarChart(
                f"群众态度（{attitude.answered} 份有效回答）",
                tuple(
                    charts.Bar(
                        label,
                        n,
                        f"{n}（{share:.1%}）",
                        _answers_link(
                            project, question=attitude.distribution.question_id, option=inverse[code]
                        )
                        if code in inverse
                        else "",
                    )
                    for code, label, n, share in stats.standard_attitudes(attitude)
                ),
            )
        )
    result["concerns"] = [
        charts.svg_bars(
            charts.BarChart(
                f"{d.text}（{d.answered} 份）",
                tuple(
                    charts.Bar(
                        o.label,
                        o.count,
                        f"{o.count}（{o.share:.0%}）",
                        _answers_link(project, question=d.question_id, option=o.code),
                    )
                    for o in d.options
                ),
                charts.PALETTE[2],
            )
        )
        for d in opinions.concerns
    ]
    result["categories"] = charts.svg_bars(
        charts.BarChart(
            "意见涉及的风险类别（条数）",
            tuple(
                charts.Bar(
                    c.name,
                    c.grievances,
                    f"{c.grievances} 条 / {c.residents} 人",
                    _answers_link(project, category=c.code),
                )
                for c in view.categories
            ),
            charts.PALETTE[3],
        )
    )
    result["per_day"] = charts.svg_columns(
        "每日提交问卷数",
        [(d.strftime("%m-%d"), n, _answers_link(project, day=d.isoformat())) for d, n in view.per_day],
    )
    return result


def _attitude_map(view: stats.Overview) -> dict[str, str]:
    from console.survey import attitude_question

    found = attitude_question(view.survey.survey)
    return found[1] if found else {}


@requires(*ALL_ROLES)
async def dashboard(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        view = await stats.overview(session, project, _scope(who), request.app[CONFIG_KEY].zone)
    if who.grid_ids is not None and not view.participation.grids:
        raise not_found(request)
    return render(
        request,
        "dashboard.html",
        project=project,
        view=view,
        charts=_dashboard_charts(project, view),
        alert_names=stats.ALERT_STATUS_NAMES,
        attitudes=stats.standard_attitudes(view.opinions.attitude) if view.opinions.attitude else [],
        ATTITUDE_NAMES=ATTITUDE_LABELS,
        party_id=party.id if (party := stats.party_question(view.survey.survey)) else "",
    )


# --- the answers behind a figure -------------------------------------------------------------------------


def _day_bounds(raw: str, request: web.Request) -> tuple[datetime, datetime] | None:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    zone = request.app[CONFIG_KEY].zone
    start = datetime.combine(day, time.min, zone)
    return start, start + timedelta(days=1)


@requires(*ALL_ROLES)
async def answers(request: web.Request) -> web.StreamResponse:
    """The submitted questionnaires behind one figure: a grid, an option chosen, a category, a day."""
    who = signed_in(request)
    q = request.query
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        survey = await stats.project_survey(session, project)
        grids = {g.id: g for g in await _grids(session, project, _scope(who))}
        query = select(Submission).where(
            Submission.project_id == project.id, Submission.status == SubmissionStatus.SUBMITTED
        )
        if who.grid_ids is not None:
            query = query.where(Submission.grid_id.in_(sorted(who.grid_ids)))
        if q.get("grid"):
            wanted = [g.id for g in grids.values() if g.code == q["grid"]]
            query = query.where(Submission.grid_id.in_(wanted))
        if q.get("channel") in ("telegram", "visit"):
            query = query.where(Submission.channel == q["channel"])
        if q.get("day") and (bounds := _day_bounds(q["day"], request)):
            query = query.where(Submission.submitted_at >= bounds[0], Submission.submitted_at < bounds[1])
        submissions = list(
            (await session.scalars(query.order_by(Submission.submitted_at, Submission.id))).all()
        )
        ids = [s.id for s in submissions]
        from storage.models import Answer

        values: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            rows = await session.execute(
                select(Answer.submission_id, Answer.question_code, Answer.value).where(
                    Answer.submission_id.in_(ids[start : start + 500])
                )
            )
            for submission_id, code, value in rows.all():
                values.setdefault(submission_id, {})[code] = (value or {}).get("v")
        question = survey.question(q.get("question", "")) if q.get("question") else None
        if question is not None and q.get("option"):
            option = q["option"]

            def chosen(v: Any) -> bool:
                return option in v if isinstance(v, list) else str(v) == option

            submissions = [s for s in submissions if chosen(values.get(s.id, {}).get(question.id))]
        items = await stats.grievances(session, project.id, _scope(who), answer_ids=None, submitted_only=True)
        by_submission: dict[int, list[stats.Grievance]] = {}
        for g in items:
            by_submission.setdefault(g.submission_id, []).append(g)
        if q.get("category"):
            submissions = [
                s
                for s in submissions
                if any(q["category"] in g.categories for g in by_submission.get(s.id, []))
            ]
    total = len(submissions)
    page = max(int(q.get("page", "1")) if q.get("page", "1").isdigit() else 1, 1)
    shown = submissions[(page - 1) * PAGE_SIZE * 4 : page * PAGE_SIZE * 4]
    async with request.app[DB_KEY].transaction() as session:
        audit_view(session, request, "answers", f"project:{project.code}", shown=len(shown))
    attitude = next(
        (
            x
            for x in survey.survey.questions
            if x.kind == "single" and {c for c, _ in x.options} & set(ATTITUDE_LABELS)
        ),
        None,
    )
    filters = {
        k: v for k, v in q.items() if k in ("grid", "question", "option", "category", "day", "channel")
    }
    return render(
        request,
        "answers.html",
        project=project,
        survey=survey.survey,
        submissions=shown,
        total=total,
        page=page,
        pages=max((total + PAGE_SIZE * 4 - 1) // (PAGE_SIZE * 4), 1),
        grids=grids,
        values=values,
        grievances=by_submission,
        attitude=attitude,
        question=question,
        filters=filters,
    )


# --- review queue ----------------------------------------------------------------------------------------


def _queue_order(g: stats.Grievance) -> tuple[int, int, datetime, int]:
    """Urgent first, then those the model is unsure of, then the rest; oldest first within each."""
    return (0 if g.urgent else 1, 0 if g.needs_look else 1, g.answered_at, g.answer_id)


def filter_queue(items: Sequence[stats.Grievance], q: Any, zone: Any) -> list[stats.Grievance]:
    status = q.get("status", "pending")
    result = [g for g in items if status == "all" or g.review_status == status]
    if q.get("grid"):
        result = [g for g in result if g.grid_code == q["grid"]]
    if q.get("category"):
        result = [g for g in result if q["category"] in g.categories]
    if q.get("urgent") == "1":
        result = [g for g in result if g.urgent]
    for key, after in (("from", True), ("to", False)):
        if q.get(key):
            try:
                day = date.fromisoformat(q[key])
            except ValueError:
                continue
            result = [
                g
                for g in result
                if (
                    g.answered_at.astimezone(zone).date() >= day
                    if after
                    else g.answered_at.astimezone(zone).date() <= day
                )
            ]
    return sorted(result, key=_queue_order)


@requires(*ALL_ROLES)
async def review_queue(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    q = request.query
    zone = request.app[CONFIG_KEY].zone
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        grids = await _grids(session, project, _scope(who))
        items = await stats.grievances(session, project.id, _scope(who))
        rules = (await assessment.current_rules(session)) if who.role != "gridworker" else None
        register = await assessment.item_rows(session, project.id, rules.rules) if rules is not None else []
    queue = filter_queue(items, q, zone)
    page = max(int(q["page"]) if q.get("page", "").isdigit() else 1, 1)
    shown = queue[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    async with request.app[DB_KEY].transaction() as session:
        audit_view(session, request, "review", f"project:{project.code}", shown=len(shown))
    counts = {
        "pending": sum(1 for g in items if g.review_status == ReviewStatus.PENDING),
        "urgent": sum(1 for g in items if g.urgent and g.review_status == ReviewStatus.PENDING),
        "total": len(items),
    }
    filters = {
        k: v for k, v in q.items() if k in ("grid", "category", "status", "from", "to", "urgent", "page")
    }
    return render(
        request,
        "review.html",
        project=project,
        grids=grids,
        queue=shown,
        matching=len(queue),
        page=page,
        pages=max((len(queue) + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        counts=counts,
        filters=filters,
        register=register,
        can_decide=who.role in ASSESSORS,
        here=request.path_qs,
    )


@requires(*ASSESSORS)
async def review_decide(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    answer_id = int(request.match_info["answer_id"])
    action = str(form.get("action", "confirm"))
    categories = [str(c) for c in form.getall("category", [])]
    note = str(form["note"]) if "note" in form else None
    target = str(form.get("risk_item", ""))
    back = local_path(str(form.get("next", "")), f"/p/{request.match_info['code']}/review")
    try:
        async with request.app[DB_KEY].transaction() as session:
            project = await load_project(request, session)
            await assessment.review(
                session, who, project, answer_id, action=action, categories=categories, note=note
            )
            if target.isdigit():
                item = await assessment.item_by_number(session, project, int(target))
                if item is None:
                    raise ChangeError("没有这个风险项")
                await assessment.attach(session, who, project, item, [answer_id])
    except ChangeError as error:
        return render(request, "error.html", status=400, message=str(error), back=back)
    if target == "new":
        factor = categories[0] if categories and action == "confirm" else ""
        raise web.HTTPFound(f"/p/{project.code}/risks/new?answer={answer_id}&factor={factor}")
    raise web.HTTPFound(_with_notice(back, "reviewed"))


def _with_notice(url: str, notice: str) -> str:
    path, _, anchor = url.partition("#")
    joiner = "&" if "?" in path else "?"
    path = "&".join(p for p in path.split("&") if not p.startswith("notice=")) if "?" in path else path
    return f"{path}{joiner}notice={notice}" + (f"#{anchor}" if anchor else "")


# --- risk register ---------------------------------------------------------------------------------------


@requires(*ASSESSORS)
async def risks(request: web.Request) -> web.StreamResponse:
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        rules = await assessment.current_rules(session)
        rows = await assessment.item_rows(session, project.id, rules.rules)
    return render(request, "risks.html", project=project, rows=rows, rules=rules)


def _blank_form(q: Any) -> dict[str, str]:
    factor = q.get("factor", "")
    return {
        "factor": factor if factor in taxonomy.codes() else "",
        "title": stats.category_name(factor) + "问题" if factor in taxonomy.codes() else "",
        "stage": "construction",
        "probability": "3",
        "impact": "3",
        "status": "open",
    }


@requires(*ASSESSORS)
async def risk_new(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    answer_id = request.query.get("answer", "")
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        rules = await assessment.current_rules(session)
        behind = (
            await stats.grievances(session, project.id, _scope(who), answer_ids=[int(answer_id)])
            if answer_id.isdigit()
            else []
        )
    return render(
        request,
        "risk_form.html",
        project=project,
        item=None,
        form=_blank_form(request.query),
        errors=[],
        grievances=behind,
        rules=rules,
        row=None,
    )


@requires(*ASSESSORS)
async def risk_create(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    values = {k: str(v) for k, v in form.items() if k not in ("csrf", "answer")}
    answer_ids = [int(str(a)) for a in form.getall("answer", []) if str(a).isdigit()]
    fields, errors = assessment.read_item_form(values)
    async with changing(request) as session:
        project = await load_project(request, session)
        if fields is not None:
            try:
                item = await assessment.create_item(session, who, project, fields, answer_ids)
            except ChangeError as error:
                errors = [str(error)]
            else:
                raise web.HTTPFound(f"/p/{project.code}/risks/{item.number}?notice=saved")
        rules = await assessment.current_rules(session)
        behind = await stats.grievances(session, project.id, _scope(who), answer_ids=answer_ids)
    return render(
        request,
        "risk_form.html",
        status=400,
        project=project,
        item=None,
        form=values,
        errors=errors,
        grievances=behind,
        rules=rules,
        row=None,
    )


async def _item_page(
    request: web.Request, session: AsyncSession, project: Project, number: int
) -> tuple[assessment.ItemRow, list[stats.Grievance], Any]:
    rules = await assessment.current_rules(session)
    rows = await assessment.item_rows(session, project.id, rules.rules)
    row = next((r for r in rows if r.item.number == number), None)
    if row is None:
        raise not_found(request)
    behind = await stats.grievances(session, project.id, None, answer_ids=list(row.answer_ids))
    return row, behind, rules


def _item_form(row: assessment.ItemRow) -> dict[str, str]:
    i = row.item
    return {
        "factor": i.factor,
        "title": i.title,
        "description": i.description,
        "stage": i.stage,
        "probability": str(i.probability),
        "impact": str(i.impact),
        "mitigation": i.mitigation,
        "department": i.department,
        "deadline": i.deadline.isoformat() if i.deadline else "",
        "status": i.status,
        "residual_probability": str(i.residual_probability or ""),
        "residual_impact": str(i.residual_impact or ""),
    }


@requires(*ASSESSORS)
async def risk_detail(request: web.Request) -> web.StreamResponse:
    async with request.app[DB_KEY].reading() as session:
        project = await load_project(request, session)
        row, behind, rules = await _item_page(request, session, project, int(request.match_info["number"]))
    async with request.app[DB_KEY].transaction() as session:
        audit_view(session, request, "risk", f"risk:{row.item.id}", grievances=len(behind))
    return render(
        request,
        "risk_form.html",
        project=project,
        item=row.item,
        row=row,
        form=_item_form(row),
        errors=[],
        grievances=behind,
        rules=rules,
    )


@requires(*ASSESSORS)
async def risk_update(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    fields, errors = assessment.read_item_form(values)
    number = int(request.match_info["number"])
    async with changing(request) as session:
        project = await load_project(request, session)
        item = await assessment.item_by_number(session, project, number)
        if item is None:
            raise not_found(request)
        if fields is not None:
            told = await assessment.update_item(session, who, item, fields)
            notice = "notified" if told else "saved"
            raise web.HTTPFound(f"/p/{project.code}/risks/{number}?notice={notice}")
        row, behind, rules = await _item_page(request, session, project, number)
    return render(
        request,
        "risk_form.html",
        status=400,
        project=project,
        item=row.item,
        row=row,
        form=values,
        errors=errors,
        grievances=behind,
        rules=rules,
    )


@requires(*ASSESSORS)
async def risk_detach(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    number = int(request.match_info["number"])
    async with request.app[DB_KEY].transaction() as session:
        project = await load_project(request, session)
        item = await assessment.item_by_number(session, project, number)
        answer = str(form.get("answer", ""))
        if item is None or not answer.isdigit():
            raise not_found(request)
        await assessment.detach(session, who, item, int(answer))
    raise web.HTTPFound(f"/p/{project.code}/risks/{number}?notice=detached")


# --- overall level and sign-off --------------------------------------------------------------------------


async def _level_context(request: web.Request, session: AsyncSession, project: Project) -> dict[str, Any]:
    data = await report.gather(session, project, request.app[CONFIG_KEY].zone)
    return {
        "project": project,
        "data": data,
        "proposal": data.proposal,
        "rules": data.rules,
        "signoffs": await assessment.signoffs(session, project.id),
        "text_fields": assessment.TEXT_FIELDS,
        "report_texts": data.texts,
    }


@requires(*ASSESSORS)
async def level_page(request: web.Request) -> web.StreamResponse:
    async with request.app[DB_KEY].transaction() as session:
        project = await load_project(request, session)
        context = await _level_context(request, session, project)
    return render(request, "level.html", errors=[], **context)


@requires(*ASSESSORS)
async def level_sign(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    async with changing(request) as session:
        project = await load_project(request, session)
        context = await _level_context(request, session, project)
        data: report.ReportData = context["data"]
        try:
            await assessment.sign_off(
                session,
                who,
                project,
                data.rules,
                data.proposal,
                level_before=str(form.get("level_before", "")),
                level_after=str(form.get("level_after", "")),
                reason=str(form.get("reason", "")),
                figures=data.figures(),
            )
        except ChangeError as error:
            errors = [str(error)]
        else:
            raise web.HTTPFound(f"/p/{project.code}/level?notice=signed")
    return render(request, "level.html", status=400, errors=errors, **context)


@requires(*ASSESSORS)
async def texts_save(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    async with request.app[DB_KEY].transaction() as session:
        project = await load_project(request, session)
        await assessment.save_texts(session, who, project, {k: str(v) for k, v in form.items()})
    raise web.HTTPFound(f"/p/{project.code}/level?notice=texts#texts")


# --- the assessment file ---------------------------------------------------------------------------------


async def _report_data(request: web.Request, kind: str) -> tuple[Project, report.ReportData]:
    async with request.app[DB_KEY].transaction() as session:
        project = await load_project(request, session)
        data = await report.gather(session, project, request.app[CONFIG_KEY].zone)
        audit_view(session, request, f"report.{kind}", f"project:{project.code}")
    return project, data


def _download(body: bytes, name: str, content_type: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@requires(*ASSESSORS)
async def report_docx(request: web.Request) -> web.StreamResponse:
    import asyncio

    project, data = await _report_data(request, "docx")
    try:
        body = await asyncio.to_thread(report.build_docx_bytes, data)
    except charts.ChartFontError:
        # The server lacks a Chinese font: say what to install instead of failing with a bare 500.
        message = (
            "服务器缺少中文字体，无法生成报告中的图表。请管理员安装 fonts-noto-cjk，或设置 MINYI_CJK_FONT。"
        )
        return render(request, "error.html", status=503, message=message)
    return _download(
        body,
        f"{project.code}-assessment.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )


@requires(*ASSESSORS)
async def report_xlsx(request: web.Request) -> web.StreamResponse:
    import asyncio

    project, data = await _report_data(request, "xlsx")
    body = await asyncio.to_thread(report.build_xlsx_bytes, data)
    return _download(
        body, f"{project.code}-data.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )


# --- rules and audit -------------------------------------------------------------------------------------


@requires(*ASSESSORS)
async def rules_page(request: web.Request) -> web.StreamResponse:
    async with request.app[DB_KEY].transaction() as session:
        current = await assessment.current_rules(session)
        versions = await assessment.all_rules(session)
    return render(
        request,
        "rules.html",
        current=current,
        versions=versions,
        draft=json.dumps(current.rules, ensure_ascii=False, indent=2),
        note="",
        errors=[],
    )


@requires(*ADMINS)
async def rules_add(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    await check_csrf(request, form)
    draft, note = str(form.get("rules", "")), str(form.get("note", ""))
    errors: list[str] = []
    try:
        parsed = json.loads(draft)
    except json.JSONDecodeError as error:
        errors = [f"不是有效的 JSON：第 {error.lineno} 行 {error.msg}"]
    async with changing(request) as session:
        if not errors:
            try:
                await assessment.add_rules(session, parsed, note, who)
            except ChangeError as error:
                errors = [str(error)]
            else:
                raise web.HTTPFound("/rules?notice=rules")
        current = await assessment.current_rules(session)
        versions = await assessment.all_rules(session)
    return render(
        request,
        "rules.html",
        status=400,
        current=current,
        versions=versions,
        draft=draft,
        note=note,
        errors=errors,
    )


@requires(*ADMINS)
async def audit_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    async with request.app[DB_KEY].reading() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(300)
        if q.get("action"):
            query = query.where(AuditEntry.action.startswith(q["action"]))
        if q.get("actor"):
            query = query.where(AuditEntry.actor == q["actor"])
        entries = (await session.scalars(query)).all()
    return render(request, "audit.html", entries=entries, filters=dict(q))
