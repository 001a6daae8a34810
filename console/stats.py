"""The figures of a project, computed from the database: participation, opinions, grievances, urgency.

The dashboard and the assessment file both use these functions, so a number in the report is the number
on the screen, and each figure keeps the filter that finds the answers behind it.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any, TypeVar

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.survey import ATTITUDE_LABELS, SurveyInfo, SurveyQuestion, attitude_question, read_survey
from nlp import taxonomy
from storage.models import (
    Account,
    Alert,
    Answer,
    AnswerTag,
    Grid,
    Project,
    QuestionnaireVersion,
    Review,
    ReviewStatus,
    RiskItemAnswer,
    Submission,
    SubmissionStatus,
)

Scope = frozenset[int] | None  # grid ids an account may see; None: all
_CHUNK = 500


def category_name(code: str) -> str:
    try:
        return taxonomy.get(code).name
    except KeyError:
        return code


@dataclass(frozen=True, slots=True)
class ProjectSurvey:
    """A project with every question its published versions asked (the newest wording wins)."""

    project: Project
    survey: SurveyInfo
    versions: tuple[QuestionnaireVersion, ...]

    def question(self, question_id: str) -> SurveyQuestion | None:
        return self.survey.question(question_id)


async def project_survey(session: AsyncSession, project: Project) -> ProjectSurvey:
    versions = (
        await session.scalars(
            select(QuestionnaireVersion)
            .where(QuestionnaireVersion.project_id == project.id)
            .order_by(QuestionnaireVersion.published_at, QuestionnaireVersion.id)
        )
    ).all()
    questions: dict[str, SurveyQuestion] = {}
    newest = SurveyInfo()
    for version in versions:
        info = read_survey(version.source)
        newest = info
        for question in info.questions:
            questions[question.id] = question
    order = [q.id for q in newest.questions] + [k for k in questions if newest.question(k) is None]
    survey = SurveyInfo(
        id=newest.id,
        version=newest.version,
        title=newest.title,
        intro=newest.intro,
        notice=newest.notice,
        questions=tuple(questions[k] for k in order),
    )
    return ProjectSurvey(project, survey, tuple(versions))


@functools.lru_cache(maxsize=4096)
def _decoded(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value.get("v") if isinstance(value, dict) else None


def stored_value(raw: str | None) -> Any:
    """The answer inside a stored {"v": ...} JSON text (do not modify what it returns: it is shared).

    Choice answers repeat a few hundred texts across thousands of questionnaires, so each is decoded once.
    """
    return _decoded(raw) if raw else None


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


def _scoped(query: _Query, scope: Scope) -> _Query:
    if scope is not None:
        query = query.where(Submission.grid_id.in_(sorted(scope)))
    return query


def _counted(project_id: int) -> list[Any]:
    """Submissions that count: past the consent step and not withdrawn."""
    return [
        Submission.project_id == project_id,
        Submission.current_step != "consent",
        Submission.status != SubmissionStatus.WITHDRAWN,
    ]


# --- participation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridRow:
    grid_id: int | None
    code: str
    name: str
    households: int
    started: int  # past consent, not withdrawn (includes submitted)
    submitted: int
    proxy: int  # submitted at the door by a grid worker (代填)
    self_answered: int

    @property
    def rate(self) -> float | None:
        return self.submitted / self.households if self.households else None


@dataclass(frozen=True, slots=True)
class Participation:
    grids: tuple[GridRow, ...]
    total: GridRow


async def participation(session: AsyncSession, project_id: int, scope: Scope) -> Participation:
    grid_query = select(Grid).where(Grid.project_id == project_id).order_by(Grid.code)
    if scope is not None:
        grid_query = grid_query.where(Grid.id.in_(sorted(scope)))
    grids = (await session.scalars(grid_query)).all()
    query = _scoped(
        select(
            Submission.grid_id,
            Submission.status,
            Submission.entered_by_id.is_not(None),
            func.count(),
        )
        .where(*_counted(project_id))
        .group_by(Submission.grid_id, Submission.status, Submission.entered_by_id.is_not(None)),
        scope,
    )
    counts: dict[int | None, Counter[str]] = defaultdict(Counter)
    for grid_id, status, proxy, n in (await session.execute(query)).all():
        bucket = counts[grid_id]
        bucket["started"] += n
        if status == SubmissionStatus.SUBMITTED:
            bucket["submitted"] += n
            bucket["proxy" if proxy else "self"] += n
    rows = [
        GridRow(g.id, g.code, g.name, g.households, *_numbers(counts.get(g.id, Counter()))) for g in grids
    ]
    if None in counts and scope is None:
        rows.append(GridRow(None, "", "（未注明网格）", 0, *_numbers(counts[None])))
    total = GridRow(
        None,
        "",
        "合计",
        sum(r.households for r in rows),
        sum(r.started for r in rows),
        sum(r.submitted for r in rows),
        sum(r.proxy for r in rows),
        sum(r.self_answered for r in rows),
    )
    return Participation(tuple(rows), total)


def _numbers(bucket: Counter[str]) -> tuple[int, int, int, int]:
    return bucket["started"], bucket["submitted"], bucket["proxy"], bucket["self"]


# --- opinions ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptionCount:
    code: str
    label: str
    count: int
    share: float  # of the answers to the question


@dataclass(frozen=True, slots=True)
class Distribution:
    question_id: str
    text: str
    kind: str
    answered: int  # submitted questionnaires that answered the question
    options: tuple[OptionCount, ...]


@dataclass(frozen=True, slots=True)
class Attitude:
    distribution: Distribution
    standard: dict[str, int]  # support / conditional / oppose / indifferent → count
    answered: int

    @property
    def support_rate(self) -> float | None:
        """支持 + 有条件支持, of those who answered the attitude question."""
        if not self.answered:
            return None
        return (self.standard.get("support", 0) + self.standard.get("conditional", 0)) / self.answered

    @property
    def opposition_rate(self) -> float | None:
        """不支持, of those who answered the attitude question."""
        return self.standard.get("oppose", 0) / self.answered if self.answered else None


@dataclass(frozen=True, slots=True)
class Opinions:
    submitted: int
    distributions: tuple[Distribution, ...]  # every single, multi and scale question, in survey order
    attitude: Attitude | None

    def distribution(self, question_id: str) -> Distribution | None:
        return next((d for d in self.distributions if d.question_id == question_id), None)

    @property
    def concerns(self) -> tuple[Distribution, ...]:
        return tuple(d for d in self.distributions if d.kind == "multi")


async def opinions(session: AsyncSession, survey: ProjectSurvey, scope: Scope) -> Opinions:
    choice = [q for q in survey.survey.questions if q.kind in ("single", "multi", "scale")]
    counts: dict[str, Counter[str]] = {q.id: Counter() for q in choice}
    answered: Counter[str] = Counter()
    submitted = [
        Submission.project_id == survey.project.id,
        Submission.status == SubmissionStatus.SUBMITTED,
    ]
    query = _scoped(
        select(Answer.question_code, cast(Answer.value, Text))
        .join(Submission, Submission.id == Answer.submission_id)
        .where(*submitted, Answer.question_code.in_([q.id for q in choice])),
        scope,
    )
    # Core rows and the stored JSON text: for 100,000 answers the ORM's row handling cost more than the
    # counting itself.
    connection = await session.connection()
    for code, raw in await connection.execute(query):
        v = stored_value(raw)
        if v is None:
            continue
        answered[code] += 1
        for item in v if isinstance(v, list) else [v]:
            counts[code][str(item)] += 1
    total = await session.scalar(
        _scoped(select(func.count()).select_from(Submission).where(*submitted), scope)
    )
    distributions = []
    for q in choice:
        n = answered[q.id]
        known = [c for c, _ in q.options]
        extra = [c for c in counts[q.id] if c not in known]
        options = tuple(
            OptionCount(c, q.label(c), counts[q.id][c], counts[q.id][c] / n if n else 0.0)
            for c in known + extra
        )
        distributions.append(Distribution(q.id, q.text, q.kind, n, options))
    attitude = None
    found = attitude_question(survey.survey)
    if found is not None:
        question, mapping = found
        distribution = next(d for d in distributions if d.question_id == question.id)
        standard: Counter[str] = Counter()
        for option in distribution.options:
            if option.code in mapping:
                standard[mapping[option.code]] += option.count
        attitude = Attitude(distribution, dict(standard), distribution.answered)
    return Opinions(int(total or 0), tuple(distributions), attitude)


def standard_attitudes(attitude: Attitude) -> list[tuple[str, str, int, float]]:
    """(standard code, 中文, count, share) for the four attitudes, in their usual order."""
    return [
        (
            code,
            label,
            attitude.standard.get(code, 0),
            attitude.standard.get(code, 0) / attitude.answered if attitude.answered else 0.0,
        )
        for code, label in ATTITUDE_LABELS.items()
    ]


@dataclass(frozen=True, slots=True)
class PartyRow:
    """The attitudes of one group of affected people (an option of the survey's relation question)."""

    code: str
    label: str
    answered: int
    standard: dict[str, int]

    @property
    def support_rate(self) -> float | None:
        n = self.standard.get("support", 0) + self.standard.get("conditional", 0)
        return n / self.answered if self.answered else None

    @property
    def opposition_rate(self) -> float | None:
        return self.standard.get("oppose", 0) / self.answered if self.answered else None


def party_question(survey: SurveyInfo) -> SurveyQuestion | None:
    """Who answered: the question "relation", else the first single choice other than the attitude."""
    found = attitude_question(survey)
    attitude_id = found[0].id if found else ""
    named = survey.question("relation")
    if named is not None and named.kind == "single":
        return named
    return next((q for q in survey.questions if q.kind == "single" and q.id != attitude_id), None)


async def attitudes_by_party(session: AsyncSession, survey: ProjectSurvey, scope: Scope) -> list[PartyRow]:
    """各方面意见: the four attitudes counted within each group of affected people."""
    found = attitude_question(survey.survey)
    party = party_question(survey.survey)
    if found is None or party is None:
        return []
    attitude, mapping = found
    query = _scoped(
        select(Answer.submission_id, Answer.question_code, cast(Answer.value, Text))
        .join(Submission, Submission.id == Answer.submission_id)
        .where(
            Submission.project_id == survey.project.id,
            Submission.status == SubmissionStatus.SUBMITTED,
            Answer.question_code.in_([attitude.id, party.id]),
        ),
        scope,
    )
    answers: dict[int, dict[str, Any]] = defaultdict(dict)
    connection = await session.connection()
    for submission_id, code, raw in await connection.execute(query):
        answers[submission_id][code] = stored_value(raw)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for given in answers.values():
        group, view = given.get(party.id), mapping.get(str(given.get(attitude.id)))
        if group is not None and view is not None:
            counts[str(group)][view] += 1
    known = [c for c, _ in party.options]
    order = known + sorted(c for c in counts if c not in known)
    return [
        PartyRow(code, party.label(code), sum(counts[code].values()), dict(counts[code]))
        for code in order
        if counts.get(code)
    ]


# --- grievances --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grievance:
    """One free-text answer with what the model said and what a person decided."""

    answer_id: int
    submission_id: int
    receipt: str
    grid_id: int | None
    grid_code: str
    question_id: str
    redacted: str
    answered_at: datetime
    submission_status: str
    proxy: bool
    person_id: int | None
    urgent: bool
    signals: tuple[str, ...]
    model_categories: tuple[str, ...] | None  # None until the classifier has run
    scores: dict[str, float]
    uncertain: bool | None
    model: str
    review_status: str  # pending / confirmed / not_grievance ("pending" again if the answer changed)
    confirmed: tuple[str, ...]
    suggested: tuple[str, ...]
    suggested_model: str
    reviewer: str
    reviewed_at: datetime | None
    note: str
    risk_item_ids: tuple[int, ...] = field(default=())

    @property
    def categories(self) -> tuple[str, ...]:
        """A person's decision when there is one, else the model's suggestion."""
        if self.review_status == ReviewStatus.CONFIRMED:
            return self.confirmed
        if self.review_status == ReviewStatus.NOT_GRIEVANCE:
            return ()
        return self.model_categories or ()

    @property
    def needs_look(self) -> bool:
        """The model is unsure or has not run yet."""
        return self.uncertain is None or bool(self.uncertain)


async def grievances(
    session: AsyncSession,
    project_id: int,
    scope: Scope,
    *,
    answer_ids: Sequence[int] | None = None,
    submitted_only: bool = False,
) -> list[Grievance]:
    """Every free-text answer that was tagged (a grievance question), oldest first."""
    query = _scoped(
        select(
            Answer.id,
            Answer.submission_id,
            Answer.question_code,
            Answer.answered_at,
            Answer.seq,
            AnswerTag.redacted,
            AnswerTag.urgent,
            AnswerTag.signals,
            AnswerTag.categories,
            AnswerTag.scores,
            AnswerTag.uncertain,
            AnswerTag.model,
            Submission.receipt,
            Submission.grid_id,
            Submission.status,
            Submission.entered_by_id,
            Submission.person_id,
            Grid.code,
            Review.status,
            Review.categories,
            Review.suggested,
            Review.suggested_model,
            Review.note,
            Review.reviewed_at,
            Review.answer_seq,
            Account.name,
        )
        .join(AnswerTag, AnswerTag.answer_id == Answer.id)
        .join(Submission, Submission.id == Answer.submission_id)
        .outerjoin(Grid, Grid.id == Submission.grid_id)
        .outerjoin(Review, Review.answer_id == Answer.id)
        .outerjoin(Account, Account.id == Review.reviewer_id)
        .where(Submission.project_id == project_id, Submission.status != SubmissionStatus.WITHDRAWN),
        scope,
    ).order_by(Answer.answered_at, Answer.id)
    if submitted_only:
        query = query.where(Submission.status == SubmissionStatus.SUBMITTED)
    if answer_ids is not None:
        query = query.where(Answer.id.in_(list(answer_ids)))
    # Core rows, not ORM objects: thousands of grievances are read for every dashboard and report.
    connection = await session.connection()
    rows = (await connection.execute(query)).all()
    links: dict[int, list[int]] = defaultdict(list)
    link_query = select(RiskItemAnswer.answer_id, RiskItemAnswer.risk_item_id).join(
        Answer, Answer.id == RiskItemAnswer.answer_id
    )
    for answer_id, item_id in await connection.execute(link_query):
        links[answer_id].append(item_id)
    result = []
    for row in rows:
        (
            answer_id,
            submission_id,
            question,
            answered_at,
            seq,
            redacted,
            urgent,
            signals,
            model_categories,
            scores,
            uncertain,
            model,
            receipt,
            grid_id,
            status,
            entered_by,
            person_id,
            grid_code,
            review_status,
            confirmed,
            suggested,
            suggested_model,
            note,
            reviewed_at,
            review_seq,
            reviewer,
        ) = row
        current = review_status is not None and review_seq == seq
        result.append(
            Grievance(
                answer_id=answer_id,
                submission_id=submission_id,
                receipt=receipt,
                grid_id=grid_id,
                grid_code=grid_code or "",
                question_id=question,
                redacted=redacted,
                answered_at=answered_at,
                submission_status=status,
                proxy=entered_by is not None,
                person_id=person_id,
                urgent=urgent,
                signals=tuple(signals or ()),
                model_categories=None if model_categories is None else tuple(model_categories),
                scores={k: float(v) for k, v in (scores or {}).items()},
                uncertain=uncertain,
                model=model,
                review_status=review_status if current else ReviewStatus.PENDING,
                confirmed=tuple(confirmed or ()) if current else (),
                suggested=tuple(suggested or ()),
                suggested_model=suggested_model or "",
                reviewer=(reviewer or "") if current else "",
                reviewed_at=reviewed_at if current else None,
                note=note or "",
                risk_item_ids=tuple(sorted(links.get(answer_id, ()))),
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class CategoryRow:
    code: str
    name: str
    grievances: int
    residents: int  # distinct questionnaires that raised it
    confirmed: int  # of the grievances, how many a person confirmed


def categories(items: Iterable[Grievance]) -> list[CategoryRow]:
    count: Counter[str] = Counter()
    confirmed: Counter[str] = Counter()
    residents: dict[str, set[int]] = defaultdict(set)
    for g in items:
        for code in g.categories:
            count[code] += 1
            residents[code].add(g.submission_id)
            if g.review_status == ReviewStatus.CONFIRMED:
                confirmed[code] += 1
    order = {code: i for i, code in enumerate(taxonomy.codes())}
    return [
        CategoryRow(code, category_name(code), count[code], len(residents[code]), confirmed[code])
        for code in sorted(count, key=lambda c: (-count[c], order.get(c, 99)))
    ]


# --- urgency and time --------------------------------------------------------------------------------


ALERT_STATUS_NAMES = {
    "queued": "待发送",
    "sent": "已通知",
    "acknowledged": "已确认",
    "escalated": "已上报",
    "unrouted": "无人接收",
}


async def alert_counts(session: AsyncSession, project_id: int, scope: Scope) -> dict[str, int]:
    query = select(Alert.status, func.count()).where(Alert.project_id == project_id).group_by(Alert.status)
    if scope is not None:
        query = query.where(Alert.grid_id.in_(sorted(scope)))
    return {status: n for status, n in (await session.execute(query)).all()}


async def submitted_per_day(
    session: AsyncSession, project_id: int, scope: Scope, zone: tzinfo
) -> list[tuple[date, int]]:
    query = _scoped(
        select(Submission.submitted_at).where(
            Submission.project_id == project_id,
            Submission.status == SubmissionStatus.SUBMITTED,
            Submission.submitted_at.is_not(None),
        ),
        scope,
    )
    days: Counter[date] = Counter()
    for (at,) in (await session.execute(query)).all():
        if at is not None:
            days[at.astimezone(zone).date()] += 1
    return sorted(days.items())


# --- everything at once ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overview:
    survey: ProjectSurvey
    participation: Participation
    opinions: Opinions
    grievances: tuple[Grievance, ...]
    categories: tuple[CategoryRow, ...]
    alerts: dict[str, int]
    urgent: int
    urgent_pending: int
    per_day: tuple[tuple[date, int], ...]
    computed_at: datetime
    parties: tuple[PartyRow, ...] = ()


async def overview(session: AsyncSession, project: Project, scope: Scope, zone: tzinfo) -> Overview:
    from storage.models import utcnow

    survey = await project_survey(session, project)
    everything = await grievances(session, project.id, scope)
    # Opinions count once a questionnaire is submitted; urgent words count as soon as they are written.
    items = [g for g in everything if g.submission_status == SubmissionStatus.SUBMITTED]
    return Overview(
        survey=survey,
        participation=await participation(session, project.id, scope),
        opinions=await opinions(session, survey, scope),
        grievances=tuple(items),
        categories=tuple(categories(items)),
        alerts=await alert_counts(session, project.id, scope),
        urgent=sum(1 for g in everything if g.urgent),
        urgent_pending=sum(1 for g in everything if g.urgent and g.review_status == ReviewStatus.PENDING),
        per_day=tuple(await submitted_per_day(session, project.id, scope, zone)),
        computed_at=utcnow(),
        parties=tuple(await attitudes_by_party(session, survey, scope)),
    )
