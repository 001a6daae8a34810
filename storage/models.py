"""SQLAlchemy 2 typed models: projects, questionnaire versions, grids, people, submissions, answers, audit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC, whatever the database does with zones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC time")
        return value.astimezone(UTC)  # SQLite keeps no zone: store every instant as UTC

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # SQLite keeps no zone
        return value


# Constraint names follow one convention so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        int: Integer,
    }


class Role(StrEnum):
    RESIDENT = "resident"
    GRIDWORKER = "gridworker"
    ASSESSOR = "assessor"
    ADMIN = "admin"


class SubmissionStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    WITHDRAWN = "withdrawn"


class Channel(StrEnum):
    TELEGRAM = "telegram"  # the resident answered on their own phone
    VISIT = "visit"  # a grid worker filled it in at the door (代填)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[QuestionnaireVersion]] = relationship(back_populates="project", lazy="raise")
    grids: Mapped[list[Grid]] = relationship(back_populates="project", lazy="raise")


class QuestionnaireVersion(Base):
    """One published, immutable version of a project's questionnaire; its YAML source is kept verbatim."""

    __tablename__ = "questionnaire_versions"
    __table_args__ = (UniqueConstraint("project_id", "survey_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    survey_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship(back_populates="versions", lazy="raise")


class Grid(Base):
    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    community: Mapped[str] = mapped_column(String(100), default="")
    households: Mapped[int] = mapped_column(default=0)

    project: Mapped[Project] = relationship(back_populates="grids", lazy="raise")


class Person(Base):
    """Someone who talks to the bot. Residents are created on first contact; staff are invited."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    role: Mapped[str] = mapped_column(String(16), default=Role.RESIDENT)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    # The dialog outside a questionnaire: "" (idle) or "confirm_delete".
    state: Mapped[str] = mapped_column(String(32), default="")
    active_submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", use_alter=True, ondelete="SET NULL")
    )
    blocked_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Assessors on duty receive urgent alerts; they switch it with /duty.
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    # The resident tapped "no more reminders" under an invitation: campaigns leave them out.
    push_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)


class Submission(Base):
    """One resident's (or one visited household's) questionnaire, from consent to receipt."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_project_status", "project_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt: Mapped[str] = mapped_column(String(16), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    questionnaire_version_id: Mapped[int] = mapped_column(ForeignKey("questionnaire_versions.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    # The grid worker who filled it in at the door (代填); None when the resident answered themselves.
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # The grid worker whose link or poster brought the resident here.
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16), default=Channel.TELEGRAM)
    status: Mapped[str] = mapped_column(String(16), default=SubmissionStatus.IN_PROGRESS)
    # Where the dialog stands: "consent", a question id, or "summary".
    current_step: Mapped[str] = mapped_column(String(64), default="consent")
    # Unfinished input of the current step: the ticked options of a multiple-choice question,
    # or whether the resident agreed to leave a phone number.
    draft: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set while the resident changes one answer from the summary: return there afterwards.
    editing: Mapped[bool] = mapped_column(Boolean, default=False)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    answer_count: Mapped[int] = mapped_column(default=0)
    # Door-to-door answers (channel "visit"): the worker's label for the household and who answered.
    household: Mapped[str] = mapped_column(String(64), default="")
    respondent: Mapped[str] = mapped_column(String(32), default="")
    # The household's own word on a proxy answer, from their phone: "" (not yet), "confirmed", "disputed".
    confirmation: Mapped[str] = mapped_column(String(16), default="")
    confirmed_at: Mapped[datetime | None]

    answers: Mapped[list[Answer]] = relationship(
        back_populates="submission", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Answer(Base):
    """The current answer to one question of a submission; changing it updates this row."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("submission_id", "question_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    question_code: Mapped[str] = mapped_column(String(64))
    # {"v": value}: a JSON wrapper so a skipped answer (null) differs from a missing row.
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    raw_text: Mapped[str] = mapped_column(Text, default="")
    # Order in which answers were given within the submission (1, 2, ...), for audits of ordering.
    seq: Mapped[int] = mapped_column(default=0)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)
    update_id: Mapped[int | None] = mapped_column(BigInteger)

    submission: Mapped[Submission] = relationship(back_populates="answers", lazy="raise")


class ProcessedUpdate(Base):
    """Telegram update ids already handled, so a redelivered update changes nothing."""

    __tablename__ = "processed_updates"

    # Only the id and the time: who sent an update is not kept here (data minimisation).
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # "person:12", "cli", "system"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Setting(Base):
    """Instance-wide values kept in the database, such as the key that signs deep links."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AnswerTag(Base):
    """What the classifier and the urgent-signal rules said about one free-text answer (advisory only)."""

    __tablename__ = "answer_tags"

    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    # The answer text with phone numbers, ID numbers, addresses and names masked.
    redacted: Mapped[str] = mapped_column(Text, default="")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Filled in after the reply, by the classifier: risk codes, a score per code, and whether a person
    # should look first because the model is unsure. None until then (or if the model failed).
    categories: Mapped[list[str] | None] = mapped_column(JSON)
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    uncertain: Mapped[bool | None] = mapped_column(Boolean)
    model: Mapped[str] = mapped_column(String(64), default="")
    tagged_at: Mapped[datetime | None]


class Alert(Base):
    """An urgent answer waiting to reach the grid's workers and the on-duty assessors."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="SET NULL"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    redacted: Mapped[str] = mapped_column(Text, default="")
    # queued → sent → acknowledged (or escalated); the grid-worker side moves it along.
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # A person asked for escalation, or nobody acknowledged in time and the admins were told.
    escalated_at: Mapped[datetime | None]
    escalated_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    admins_notified_at: Mapped[datetime | None]


# --- the assessors' console: accounts, review, risk register, levels, notifications ------------------


class Account(Base):
    """A person who signs in to the web console (assessor, admin, or grid worker limited to their grids)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The same person in the bot, when they have one (a grid worker's Telegram account).
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountGrid(Base):
    """A grid a grid-worker account may see; accounts of other roles see every grid."""

    __tablename__ = "account_grids"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True)


class ConsoleSession(Base):
    """A signed-in browser; only a hash of its cookie is kept, so a copy of the database opens no session."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """A failed sign-in, counted per account name and per address to slow down password guessing."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReviewStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # categories confirmed or corrected by a person
    NOT_GRIEVANCE = "not_grievance"


class Review(Base):
    """A person's decision on one free-text answer, kept beside what the model suggested."""

    __tablename__ = "reviews"

    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.PENDING, index=True)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The model's categories and model name when the person decided ("suggested by model → confirmed by").
    suggested: Mapped[list[str]] = mapped_column(JSON, default=list)
    suggested_model: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None]
    # Answer.seq when decided: an answer changed since then needs a new look.
    answer_seq: Mapped[int] = mapped_column(default=0)


class RiskItem(Base):
    """One entry of the risk register (风险清单): a risk factor, its estimate and its mitigation."""

    __tablename__ = "risk_items"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    number: Mapped[int]  # ... within the project
    factor: Mapped[str] = mapped_column(String(32))  # a risk code of nlp/data/taxonomy.yaml
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(16))
    probability: Mapped[int]
    impact: Mapped[int]
    mitigation: Mapped[str] = mapped_column(Text, default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    deadline: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    residual_probability: Mapped[int | None]
    residual_impact: Mapped[int | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RiskItemAnswer(Base):
    """A grievance behind a risk item."""

    __tablename__ = "risk_item_answers"

    risk_item_id: Mapped[int] = mapped_column(
        ForeignKey("risk_items.id", ondelete="CASCADE"), primary_key=True
    )
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class LevelRules(Base):
    """One version of the rules that propose a risk level; never edited, a change is a new version."""

    __tablename__ = "level_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    # Opposition-rate bands, the probability × impact matrix and their source notes (console/levels.py).
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LevelSignoff(Base):
    """An assessor's confirmation or override of the proposed overall level, with the reasoning shown."""

    __tablename__ = "level_signoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    rules_id: Mapped[int] = mapped_column(ForeignKey("level_rules.id"))
    proposed_before: Mapped[str] = mapped_column(String(8))
    proposed_after: Mapped[str] = mapped_column(String(8))
    level_before: Mapped[str] = mapped_column(String(8))
    level_after: Mapped[str] = mapped_column(String(8))
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    # The reasoning and the figures it used, as shown when signing.
    reasoning: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    signed_by_name: Mapped[str] = mapped_column(String(64), default="")
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssessmentText(Base):
    """The written parts of a project's assessment file: overview, basis, conclusion, emergency plan."""

    __tablename__ = "assessment_texts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """A message waiting for the bot to tell a resident what happened to what they raised."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    risk_item_id: Mapped[int | None] = mapped_column(ForeignKey("risk_items.id", ondelete="SET NULL"))
    # queued → sent (or failed); the bot moves it along.
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


# --- grid workers: invitations, grids, push campaigns, alert deliveries ------------------------------


class Invite(Base):
    """A one-time, expiring invitation that gives whoever opens it a staff role (and grids)."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Only a hash of the code: a copy of the database cannot be used to join as staff.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    grid_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))


class GridWorker(Base):
    """A grid a grid worker looks after; they act only within these."""

    __tablename__ = "grid_workers"

    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # the call may have been made; after a crash this becomes UNKNOWN, never resent
    SENT = "sent"
    BLOCKED = "blocked"  # 403: the person blocked the bot
    FAILED = "failed"  # refused (400) or server errors after every retry
    UNKNOWN = "unknown"  # interrupted mid-call: maybe delivered, so not sent again (at most once)


class Campaign(Base):
    """A persisted push: one message to each recipient, paced, resumable after a restart."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "invite" or "reminder"
    grid_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    only_unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.RUNNING, index=True)
    total: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    # The worker who started it from the bot: their links attribute the answers, their chat shows progress.
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    status_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    """One person of a campaign and how far their single message got."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "chat_id"),
        Index("ix_campaign_recipients_campaign_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=RecipientState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(String(200), default="")
    sent_at: Mapped[datetime | None]


class AlertDelivery(Base):
    """One copy of an urgent alert in one staff member's chat, so acknowledging can update every copy."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    audience: Mapped[str] = mapped_column(String(16))  # "grid", "assessor" or "admin"
    status: Mapped[str] = mapped_column(String(16), default="sent")  # "sent", "blocked", "failed"
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
