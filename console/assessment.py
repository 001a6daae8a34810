"""What assessors change: reviews of grievances, risk items, level rules, sign-offs and report texts.

Every change is written to the audit log in the same transaction; a risk item's status change queues a
notification to each resident whose grievance is behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import levels, texts
from console.auth import SignedIn
from console.stats import category_name
from nlp import taxonomy
from storage import outreach
from storage import repository as repo
from storage.models import (
    Answer,
    AnswerTag,
    AssessmentText,
    LevelRules,
    LevelSignoff,
    Project,
    Review,
    ReviewStatus,
    RiskItem,
    RiskItemAnswer,
    Submission,
    SubmissionStatus,
    utcnow,
)


class ChangeError(ValueError):
    """A change that cannot be made, with a reason for the person who asked (in Chinese)."""


# --- level rules ---------------------------------------------------------------------------------------


async def current_rules(session: AsyncSession) -> LevelRules:
    """The newest version of the level rules; the defaults become version 1 the first time."""
    row = (await session.scalars(select(LevelRules).order_by(LevelRules.version.desc()).limit(1))).first()
    if row is None:
        row = LevelRules(version=1, rules=levels.DEFAULT_RULES, note="默认规则", created_by="system")
        session.add(row)
        await session.flush()
    return row


async def all_rules(session: AsyncSession) -> Sequence[LevelRules]:
    return (await session.scalars(select(LevelRules).order_by(LevelRules.version.desc()))).all()


async def add_rules(session: AsyncSession, rules: Any, note: str, who: SignedIn) -> LevelRules:
    try:
        checked = levels.check_rules(rules)
    except levels.RulesError as error:
        raise ChangeError(f"规则有误：{error}") from error
    if not note.strip():
        raise ChangeError("请说明这一版规则的来源或修改原因")
    latest = await current_rules(session)
    row = LevelRules(version=latest.version + 1, rules=checked, note=note.strip(), created_by=who.name)
    session.add(row)
    await session.flush()
    repo.audit(session, who.actor, "rules.added", f"rules:{row.version}", note=row.note)
    return row


# --- review of grievances ------------------------------------------------------------------------------


async def review(
    session: AsyncSession,
    who: SignedIn,
    project: Project,
    answer_id: int,
    *,
    action: str,
    categories: Sequence[str] = (),
    note: str | None = None,
) -> Review:
    """Confirm or correct the categories of a grievance, mark it as not a grievance, or only save a note."""
    answer, tag, submission = await _grievance(session, project, answer_id, who)
    known = set(taxonomy.codes())
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise ChangeError(f"未知的风险类别：{'、'.join(unknown)}")
    row = await session.get(Review, answer_id)
    if row is None:
        row = Review(answer_id=answer_id, status=ReviewStatus.PENDING, categories=[], suggested=[], note="")
        session.add(row)
    before = {"status": row.status, "categories": list(row.categories or [])}
    if action in ("confirm", "not_grievance"):
        if action == "confirm" and not categories:
            raise ChangeError("请至少选一个风险类别，或标为“不是诉求”")
        row.status = ReviewStatus.CONFIRMED if action == "confirm" else ReviewStatus.NOT_GRIEVANCE
        row.categories = [c for c in taxonomy.codes() if c in set(categories)] if action == "confirm" else []
        row.suggested = list(tag.categories or [])
        row.suggested_model = tag.model
        row.reviewer_id = who.account_id
        row.reviewed_at = utcnow()
        row.answer_seq = answer.seq
    elif action != "note":
        raise ChangeError("未知的操作")
    if note is not None:
        row.note = note.strip()[:2000]
    await session.flush()
    repo.audit(
        session,
        who.actor,
        f"review.{action}",
        f"answer:{answer_id}",
        before=before,
        after={"status": row.status, "categories": list(row.categories)},
        suggested=list(tag.categories or []),
        note_changed=note is not None,
        submission=submission.receipt,
    )
    return row


async def _grievance(
    session: AsyncSession, project: Project, answer_id: int, who: SignedIn
) -> tuple[Answer, AnswerTag, Submission]:
    row = (
        await session.execute(
            select(Answer, AnswerTag, Submission)
            .join(AnswerTag, AnswerTag.answer_id == Answer.id)
            .join(Submission, Submission.id == Answer.submission_id)
            .where(Answer.id == answer_id, Submission.project_id == project.id)
        )
    ).first()
    if row is None or row[2].status == SubmissionStatus.WITHDRAWN:
        raise ChangeError("没有这条意见")
    if who.grid_ids is not None and row[2].grid_id not in who.grid_ids:
        raise ChangeError("没有这条意见")
    return row[0], row[1], row[2]


# --- risk items ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemFields:
    factor: str
    title: str
    description: str
    stage: str
    probability: int
    impact: int
    mitigation: str
    department: str
    deadline: date | None
    status: str
    residual_probability: int | None
    residual_impact: int | None


def read_item_form(form: Mapping[str, str]) -> tuple[ItemFields | None, list[str]]:
    """The fields of a risk item from a submitted form, and every mistake in it (in Chinese)."""
    errors: list[str] = []

    def number(key: str, name: str, optional: bool = False) -> int | None:
        raw = form.get(key, "").strip()
        if not raw and optional:
            return None
        if raw.isdigit() and 1 <= int(raw) <= 5:
            return int(raw)
        errors.append(f"{name}须为 1 到 5 的整数")
        return None

    factor = form.get("factor", "").strip()
    if factor not in taxonomy.codes():
        errors.append("请选择风险因素")
    title = form.get("title", "").strip()
    if not title:
        errors.append("请填写风险项名称")
    stage = form.get("stage", "").strip()
    if stage not in texts.STAGES:
        errors.append("请选择阶段")
    status = form.get("status", "open").strip() or "open"
    if status not in texts.ITEM_STATUSES:
        errors.append("状态无效")
    probability = number("probability", "发生概率")
    impact = number("impact", "影响程度")
    residual_p = number("residual_probability", "措施后概率", optional=True)
    residual_i = number("residual_impact", "措施后影响", optional=True)
    if (residual_p is None) != (residual_i is None) and not errors:
        errors.append("措施后概率和影响须同时填写")
    deadline: date | None = None
    raw_deadline = form.get("deadline", "").strip()
    if raw_deadline:
        try:
            deadline = date.fromisoformat(raw_deadline)
        except ValueError:
            errors.append("完成期限须为日期（如 2026-12-31）")
    if errors or probability is None or impact is None:
        return None, errors
    return (
        ItemFields(
            factor=factor,
            title=title[:200],
            description=form.get("description", "").strip()[:4000],
            stage=stage,
            probability=probability,
            impact=impact,
            mitigation=form.get("mitigation", "").strip()[:4000],
            department=form.get("department", "").strip()[:200],
            deadline=deadline,
            status=status,
            residual_probability=residual_p,
            residual_impact=residual_i,
        ),
        [],
    )


def _snapshot(item: RiskItem) -> dict[str, Any]:
    return {
        "factor": item.factor,
        "title": item.title,
        "description": item.description,
        "stage": item.stage,
        "probability": item.probability,
        "impact": item.impact,
        "mitigation": item.mitigation,
        "department": item.department,
        "deadline": item.deadline.isoformat() if item.deadline else None,
        "status": item.status,
        "residual_probability": item.residual_probability,
        "residual_impact": item.residual_impact,
    }


async def create_item(
    session: AsyncSession, who: SignedIn, project: Project, fields: ItemFields, answer_ids: Sequence[int] = ()
) -> RiskItem:
    number = (
        await session.execute(select(func.max(RiskItem.number)).where(RiskItem.project_id == project.id))
    ).scalar()
    item = RiskItem(project_id=project.id, number=(number or 0) + 1, created_by_id=who.account_id)
    _apply(item, fields)
    session.add(item)
    await session.flush()
    repo.audit(session, who.actor, "risk.created", f"risk:{item.id}", after=_snapshot(item))
    if answer_ids:
        await attach(session, who, project, item, answer_ids)
    return item


def _apply(item: RiskItem, fields: ItemFields) -> None:
    for spec in dataclasses.fields(fields):
        setattr(item, spec.name, getattr(fields, spec.name))
    item.updated_at = utcnow()


async def update_item(session: AsyncSession, who: SignedIn, item: RiskItem, fields: ItemFields) -> int:
    """Save the item; returns how many residents were queued a notification (status changes only)."""
    before = _snapshot(item)
    _apply(item, fields)
    after = _snapshot(item)
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if not changed:
        return 0
    await session.flush()
    repo.audit(session, who.actor, "risk.updated", f"risk:{item.id}", changed=changed)
    if "status" in changed:
        return await notify_status_change(session, who, item)
    return 0


async def item_by_number(session: AsyncSession, project: Project, number: int) -> RiskItem | None:
    return (
        await session.scalars(
            select(RiskItem).where(RiskItem.project_id == project.id, RiskItem.number == number)
        )
    ).first()


async def items_of(session: AsyncSession, project_id: int) -> Sequence[RiskItem]:
    return (
        await session.scalars(
            select(RiskItem).where(RiskItem.project_id == project_id).order_by(RiskItem.number)
        )
    ).all()


async def attach(
    session: AsyncSession, who: SignedIn, project: Project, item: RiskItem, answer_ids: Sequence[int]
) -> int:
    added = 0
    for answer_id in dict.fromkeys(answer_ids):
        await _grievance(session, project, answer_id, who)
        if await session.get(RiskItemAnswer, (item.id, answer_id)) is None:
            session.add(RiskItemAnswer(risk_item_id=item.id, answer_id=answer_id, added_by_id=who.account_id))
            added += 1
    await session.flush()
    if added:
        repo.audit(session, who.actor, "risk.attached", f"risk:{item.id}", answers=list(answer_ids))
    return added


async def detach(session: AsyncSession, who: SignedIn, item: RiskItem, answer_id: int) -> None:
    await session.execute(
        delete(RiskItemAnswer).where(
            RiskItemAnswer.risk_item_id == item.id, RiskItemAnswer.answer_id == answer_id
        )
    )
    repo.audit(session, who.actor, "risk.detached", f"risk:{item.id}", answer=answer_id)


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A risk item as the register and the report show it."""

    item: RiskItem
    level: str
    residual: str
    grievances: int
    residents: int
    answer_ids: tuple[int, ...] = field(default=())

    @property
    def code(self) -> str:
        return f"R-{self.item.number:03d}"

    @property
    def factor_name(self) -> str:
        return category_name(self.item.factor)

    @property
    def estimate(self) -> levels.ItemEstimate:
        i = self.item
        return levels.ItemEstimate(
            f"{self.code} {i.title}",
            self.level,
            self.residual,
            i.probability,
            i.impact,
            i.residual_probability,
            i.residual_impact,
        )


async def item_rows(session: AsyncSession, project_id: int, rules: dict[str, Any]) -> list[ItemRow]:
    items = await items_of(session, project_id)
    links = (
        await session.execute(
            select(RiskItemAnswer.risk_item_id, RiskItemAnswer.answer_id, Answer.submission_id)
            .join(Answer, Answer.id == RiskItemAnswer.answer_id)
            .join(Submission, Submission.id == Answer.submission_id)
            .join(RiskItem, RiskItem.id == RiskItemAnswer.risk_item_id)
            .where(RiskItem.project_id == project_id, Submission.status != SubmissionStatus.WITHDRAWN)
        )
    ).all()
    answers: dict[int, list[int]] = {}
    residents: dict[int, set[int]] = {}
    for item_id, answer_id, submission_id in links:
        answers.setdefault(item_id, []).append(answer_id)
        residents.setdefault(item_id, set()).add(submission_id)
    rows = []
    for item in items:
        level = levels.item_level(rules, item.probability, item.impact)
        residual = (
            levels.item_level(rules, item.residual_probability, item.residual_impact)
            if item.residual_probability and item.residual_impact
            else level
        )
        ids = tuple(sorted(answers.get(item.id, [])))
        rows.append(ItemRow(item, level, residual, len(ids), len(residents.get(item.id, ())), ids))
    return rows


# --- closing the loop: tell residents ------------------------------------------------------------------


async def notify_status_change(session: AsyncSession, who: SignedIn, item: RiskItem) -> int:
    """Tell every resident behind the item, once per person, through the bot's notice queue
    (storage.outreach.queue_grievance_notice: the bot words the status and sends outside quiet hours).

    A withdrawn questionnaire, an erased account, or a door-to-door answer the household has not confirmed
    from a phone is never told anything.
    """
    rows = (
        await session.execute(
            select(Submission.person_id, func.min(Answer.id))
            .join(Answer, Answer.submission_id == Submission.id)
            .join(RiskItemAnswer, RiskItemAnswer.answer_id == Answer.id)
            .where(
                RiskItemAnswer.risk_item_id == item.id,
                Submission.person_id.is_not(None),
                Submission.status != SubmissionStatus.WITHDRAWN,
            )
            .group_by(Submission.person_id)
        )
    ).all()
    status = texts.NOTICE_STATUS.get(item.status)
    if status is None:
        return 0
    note = texts.NOTICE_NOTE.format(
        topic=item.title,
        department=item.department or texts.NOTIFY_FALLBACK_DEPARTMENT,
        measure=item.mitigation or texts.NOTIFY_FALLBACK_MEASURE,
    )
    told = 0
    for _person, answer_id in rows:
        notice = await outreach.queue_grievance_notice(
            session, answer_id, status, note=note, risk_item_id=item.id, actor=who.actor
        )
        told += notice is not None
    repo.audit(session, who.actor, "risk.notified", f"risk:{item.id}", status=item.status, residents=told)
    return told


# --- sign-off and report texts -------------------------------------------------------------------------


async def sign_off(
    session: AsyncSession,
    who: SignedIn,
    project: Project,
    rules: LevelRules,
    proposal: levels.Proposal,
    *,
    level_before: str,
    level_after: str,
    reason: str,
    figures: dict[str, Any],
) -> LevelSignoff:
    if level_before not in levels.LEVELS or level_after not in levels.LEVELS:
        raise ChangeError("请选择风险等级")
    overridden = (level_before, level_after) != (proposal.before, proposal.after)
    if overridden and not reason.strip():
        raise ChangeError("调整建议等级时须写明理由")
    row = LevelSignoff(
        project_id=project.id,
        rules_id=rules.id,
        proposed_before=proposal.before,
        proposed_after=proposal.after,
        level_before=level_before,
        level_after=level_after,
        overridden=overridden,
        reason=reason.strip()[:4000],
        reasoning={**proposal.as_dict(), "figures": figures, "rules_version": rules.version},
        signed_by_id=who.account_id,
        signed_by_name=who.name,
    )
    session.add(row)
    await session.flush()
    repo.audit(
        session,
        who.actor,
        "level.signed",
        f"project:{project.code}",
        proposed=[proposal.before, proposal.after],
        signed=[level_before, level_after],
        overridden=overridden,
        rules_version=rules.version,
    )
    return row


async def signoffs(session: AsyncSession, project_id: int) -> Sequence[LevelSignoff]:
    return (
        await session.scalars(
            select(LevelSignoff)
            .where(LevelSignoff.project_id == project_id)
            .order_by(LevelSignoff.signed_at.desc(), LevelSignoff.id.desc())
        )
    ).all()


# The written parts of the report, in the order of the national outline.
TEXT_FIELDS = {
    "overview": "项目概况（含此前信访情况）",
    "basis": "评估依据",
    "assessor": "评估主体",
    "process": "评估过程和方法",
    "adoption": "各方面意见采纳情况（总体说明）",
    "legality": "合法性",
    "reasonableness": "合理性",
    "feasibility": "可行性",
    "controllability": "可控性",
    "emergency": "应急处置预案",
}


async def report_texts(session: AsyncSession, project_id: int) -> dict[str, str]:
    row = await session.get(AssessmentText, project_id)
    stored = dict(row.fields) if row else {}
    return {key: str(stored.get(key, "")) for key in TEXT_FIELDS}


async def save_texts(session: AsyncSession, who: SignedIn, project: Project, form: Mapping[str, str]) -> None:
    row = await session.get(AssessmentText, project.id)
    if row is None:
        row = AssessmentText(project_id=project.id, fields={})
        session.add(row)
    values = {key: form.get(key, "").strip()[:8000] for key in TEXT_FIELDS}
    changed = [key for key in TEXT_FIELDS if values[key] != str((row.fields or {}).get(key, ""))]
    row.fields = values
    row.updated_by = who.name
    row.updated_at = utcnow()
    await session.flush()
    repo.audit(session, who.actor, "texts.saved", f"project:{project.code}", fields=changed)
