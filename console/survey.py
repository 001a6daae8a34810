"""Read what the console shows of a stored questionnaire: question texts, types and option labels.

The bot's full reader (bot/survey_file.py) validates and builds the dialog; the console only needs words
for codes, and stored versions were validated when they were published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class SurveyQuestion:
    id: str
    kind: str
    text: str
    options: tuple[tuple[str, str], ...] = ()  # (code, label)
    grievance: bool = False
    required: bool = True
    help: str = ""

    def label(self, code: object) -> str:
        if code is None:
            return "（跳过）"
        if isinstance(code, list):
            return "、".join(self.label(c) for c in code) or "（无）"
        for option_code, label in self.options:
            if option_code == str(code):
                return label
        return str(code)


@dataclass(frozen=True, slots=True)
class SurveyInfo:
    id: str = ""
    version: int = 0
    title: str = ""
    intro: str = ""
    notice: str = ""
    questions: tuple[SurveyQuestion, ...] = field(default_factory=tuple)

    def question(self, question_id: str) -> SurveyQuestion | None:
        return next((q for q in self.questions if q.id == question_id), None)


def _options(raw: Any) -> tuple[tuple[str, str], ...]:
    result: list[tuple[str, str]] = []
    for entry in raw or []:
        if isinstance(entry, dict) and "code" in entry:
            result.append((str(entry["code"]), str(entry.get("label", entry["code"]))))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((code, label),) = entry.items()
            result.append((str(code), str(label)))
    return tuple(result)


def _scale_options(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    try:
        low, high = int(raw["min"]), int(raw["max"])
    except (KeyError, TypeError, ValueError):
        return ()
    labels = raw.get("labels") or {}
    return tuple((str(p), f"{p} {labels[p]}" if p in labels else str(p)) for p in range(low, high + 1))


def read_survey(source: str) -> SurveyInfo:
    """The parts of a stored questionnaire the console shows; unknown or odd keys are ignored."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError:
        return SurveyInfo()
    if not isinstance(raw, dict):
        return SurveyInfo()
    questions: list[SurveyQuestion] = []
    for entry in raw.get("questions") or []:
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        kind = str(entry.get("type", ""))
        options = _scale_options(entry) if kind == "scale" else _options(entry.get("options"))
        questions.append(
            SurveyQuestion(
                id=str(entry["id"]),
                kind=kind,
                text=str(entry.get("text", "")),
                options=options,
                grievance=bool(entry.get("grievance", False)),
                required=bool(entry.get("required", True)),
                help=str(entry.get("help", "")),
            )
        )
    consent = raw.get("consent") if isinstance(raw.get("consent"), dict) else {}
    version = raw.get("version")
    return SurveyInfo(
        id=str(raw.get("id", "")),
        version=version if isinstance(version, int) else 0,
        title=str(raw.get("title", "")),
        intro=str(raw.get("intro", "") or ""),
        notice=str((consent or {}).get("notice", "") or ""),
        questions=tuple(questions),
    )


# The attitude question is found by its options, so a survey may name it as it likes.
ATTITUDE_CODES = ("support", "conditional", "oppose", "indifferent")
ATTITUDE_LABELS = {
    "support": "支持",
    "conditional": "有条件支持",
    "oppose": "不支持",
    "indifferent": "无所谓",
}


def attitude_question(survey: SurveyInfo) -> tuple[SurveyQuestion, dict[str, str]] | None:
    """The single-choice attitude question and a map of its option codes to the four standard codes."""
    by_label = {label: code for code, label in ATTITUDE_LABELS.items()}
    for question in survey.questions:
        if question.kind != "single":
            continue
        mapping: dict[str, str] = {}
        for code, label in question.options:
            if code in ATTITUDE_CODES:
                mapping[code] = code
            elif label.strip() in by_label:
                mapping[code] = by_label[label.strip()]
        if {"support", "oppose"} <= set(mapping.values()):
            return question, mapping
    return None
