"""The Questionnaire: an immutable, validated survey with skip logic; parsed from YAML by survey_file."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# What an answer holds once stored: an option code (single), codes (multi), a number (scale, number),
# text (text, phone) or None for an optional question the resident skipped.
AnswerValue = str | int | float | list[str] | None

MESSAGE_LIMIT = 4096  # characters, Telegram's limit for one message
# Characters the engine may add around a question (progress, re-ask note, current answer).
FRAME_RESERVE = 300
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class QuestionKind(StrEnum):
    SINGLE = "single"
    MULTI = "multi"
    SCALE = "scale"
    TEXT = "text"
    NUMBER = "number"
    PHONE = "phone"


CHOICE_KINDS = frozenset({QuestionKind.SINGLE, QuestionKind.MULTI, QuestionKind.SCALE})


@dataclass(frozen=True, slots=True)
class Option:
    code: str
    label: str


@dataclass(frozen=True, slots=True)
class Condition:
    """One clause of a question's `when`: the answer to `question` must be one of `codes`
    (single choice: that option; multiple choice: any of them chosen) or lie in [minimum, maximum]
    (scale and number)."""

    question: str
    codes: frozenset[str] = frozenset()
    minimum: float | None = None
    maximum: float | None = None

    def holds(self, answers: Mapping[str, AnswerValue]) -> bool:
        value = answers.get(self.question)
        if value is None:
            return False
        if self.codes:
            if isinstance(value, list):
                return bool(self.codes.intersection(value))
            return str(value) in self.codes
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    kind: QuestionKind
    text: str
    line: int = 0  # where the question starts in its YAML file, for error messages
    options: tuple[Option, ...] = ()  # single and multi; scale options are derived from its range
    required: bool = True
    when: tuple[Condition, ...] = ()  # all clauses must hold for the question to be asked
    help: str = ""  # a short hint shown under the question
    max_length: int = 500  # text
    minimum: float | None = None  # scale, number; multi: fewest choices
    maximum: float | None = None  # scale, number; multi: most choices (None: no limit)
    integer: bool = True  # number: whole numbers only
    scale_labels: Mapping[int, str] = field(default_factory=dict)  # scale: words for some points
    grievance: bool = False  # text: the answer is a grievance for the risk classifier
    consent: str = ""  # phone: the separate consent question asked before the number

    def choices(self) -> tuple[Option, ...]:
        """The buttons of a choice question; a scale's points become options coded '1', '2', ..."""
        if self.kind is QuestionKind.SCALE and self.minimum is not None and self.maximum is not None:
            points = range(int(self.minimum), int(self.maximum) + 1)
            return tuple(
                Option(str(p), f"{p} {self.scale_labels[p]}" if p in self.scale_labels else str(p))
                for p in points
            )
        return self.options

    def option(self, code: str) -> Option | None:
        return next((o for o in self.choices() if o.code == code), None)

    def label_of(self, value: AnswerValue) -> str:
        """An answer in words, as the resident would recognise it."""
        if value is None:
            return "（跳过）"
        if isinstance(value, list):
            return "、".join(self.label_of(v) for v in value) or "（无）"
        option = self.option(str(value)) if self.kind in CHOICE_KINDS else None
        return option.label if option else str(value)


@dataclass(frozen=True, slots=True)
class Consent:
    notice: str
    agree: str = "同意，开始填写"
    decline: str = "不同意"
    anonymous: str = ""  # the label of the anonymous choice; empty when the survey offers none


@dataclass(frozen=True, slots=True)
class Questionnaire:
    id: str
    version: int
    title: str
    intro: str
    consent: Consent
    questions: tuple[Question, ...]
    # Where each question id stands, built once: every update looks questions up by id several times.
    _positions: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positions: dict[str, int] = {}
        for i, q in enumerate(self.questions):
            positions.setdefault(q.id, i)  # the first, as a scan would find (ids are unique once checked)
        object.__setattr__(self, "_positions", positions)

    @property
    def allows_anonymous(self) -> bool:
        return bool(self.consent.anonymous)

    def question(self, question_id: str) -> Question | None:
        i = self._positions.get(question_id)
        return self.questions[i] if i is not None else None

    def index(self, question_id: str) -> int:
        return self._positions[question_id]

    def applies(self, question: Question, answers: Mapping[str, AnswerValue], anonymous: bool) -> bool:
        """Skip logic: is this question asked, given the answers so far?"""
        if anonymous and question.kind is QuestionKind.PHONE:
            return False  # an anonymous resident is never asked how to reach them
        return all(c.holds(answers) for c in question.when)

    def applicable(self, answers: Mapping[str, AnswerValue], anonymous: bool) -> list[Question]:
        return [q for q in self.questions if self.applies(q, answers, anonymous)]

    def next_unanswered(self, answers: Mapping[str, AnswerValue], anonymous: bool) -> Question | None:
        """The first question that applies and has no answer yet; None when the survey is complete."""
        for q in self.questions:
            if q.id not in answers and self.applies(q, answers, anonymous):
                return q
        return None

    def previous(
        self, question_id: str | None, answers: Mapping[str, AnswerValue], anonymous: bool
    ) -> Question | None:
        """The applicable question before `question_id` (None: before the summary, i.e. the last one)."""
        end = len(self.questions) if question_id is None else self.index(question_id)
        for q in reversed(self.questions[:end]):
            if self.applies(q, answers, anonymous):
                return q
        return None


_PUNCTUATION = re.compile(r"[\s,.!?;:'\"，。！？；：、“”‘’（）()【】\[\]…~～-]+")


def normalise(text: str) -> str:
    """Fold full-width forms and drop spaces and punctuation, so typed answers compare fairly."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text)).lower()


def match_option(question: Question, text: str) -> Option | None:
    """Match a typed answer to one option when it clearly is one: its number, code or label.

    "支持" picks 支持 (not 有条件支持 or 不支持); "我不支持" picks 不支持, the longest label it contains;
    anything that fits two options equally well is no match, and the resident is asked to tap instead.
    """
    typed = normalise(text)
    if not typed:
        return None
    options = question.choices()
    by_number = (
        {str(i): o for i, o in enumerate(options, start=1)} if question.kind is not QuestionKind.SCALE else {}
    )
    for option in options:
        if typed in (normalise(option.label), option.code.lower()):
            return option
    if typed in by_number:
        return by_number[typed]
    contained = [o for o in options if normalise(o.label) and normalise(o.label) in typed]
    if contained:
        longest = max(len(normalise(o.label)) for o in contained)
        best = [o for o in contained if len(normalise(o.label)) == longest]
        return best[0] if len(best) == 1 else None
    containing = [o for o in options if typed in normalise(o.label)]
    return containing[0] if len(containing) == 1 and len(typed) >= 2 else None
