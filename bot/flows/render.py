"""Renders questionnaire steps as messages: the consent notice, one question, the summary, the edit list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot import callbacks as cb
from bot import texts
from bot.messages import Button
from bot.questionnaire import AnswerValue, Question, QuestionKind, Questionnaire

Keyboard = tuple[tuple[Button, ...], ...]
SUMMARY_ANSWER_LIMIT = 60  # characters of a free-text answer shown in the summary
SUMMARY_QUESTION_LIMIT = 24
MESSAGE_BUDGET = 4000  # below Telegram's 4096, leaving room for a note


def short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int) -> str:
    """Cut a whole message to a length, keeping its lines."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def consent_message(q: Questionnaire, version_id: int) -> tuple[str, Keyboard]:
    text = f"{q.title}\n\n{q.intro.strip()}\n\n{q.consent.notice.strip()}\n\n{texts.CONSENT_TAIL}"
    rows = [(Button(q.consent.agree, cb.encode(cb.CONSENT, version_id, "agree")),)]
    if q.allows_anonymous:
        rows.append((Button(q.consent.anonymous, cb.encode(cb.CONSENT, version_id, "anon")),))
    rows.append((Button(q.consent.decline, cb.encode(cb.CONSENT, version_id, "decline")),))
    return text, tuple(rows)


def question_message(
    q: Questionnaire,
    version_id: int,
    question: Question,
    answers: Mapping[str, AnswerValue],
    *,
    anonymous: bool,
    draft: Mapping[str, object],
    note: str = "",
) -> tuple[str, Keyboard]:
    applicable = q.applicable(answers, anonymous)
    number = next((i for i, x in enumerate(applicable, start=1) if x.id == question.id), len(applicable))
    has_answer = question.id in answers
    lines = [note] if note else []
    phone_number_step = question.kind is QuestionKind.PHONE and draft.get("phone_consent") is True
    if question.kind is QuestionKind.PHONE and not phone_number_step:
        heading = question.consent
    else:
        heading = question.text
    mark = "" if question.required else texts.OPTIONAL_MARK
    lines.append(texts.PROGRESS.format(n=number, total=len(applicable)) + heading + mark)
    if question.help:
        lines.append(question.help)
    if question.kind is QuestionKind.MULTI:
        lines.append(texts.MULTI_HINT)
    elif question.kind is QuestionKind.TEXT:
        lines.append(texts.TEXT_HINT.format(limit=question.max_length))
    elif question.kind is QuestionKind.NUMBER:
        lines.append(texts.NUMBER_HINT)
    if has_answer:
        lines.append(texts.PREVIOUS_ANSWER.format(answer=short(question.label_of(answers[question.id]), 200)))

    rows: list[tuple[Button, ...]] = []
    current = answers.get(question.id)
    if question.kind in (QuestionKind.SINGLE, QuestionKind.SCALE):
        options = question.choices()
        buttons = [
            Button(
                ("✓ " if has_answer and str(current) == o.code else "") + o.label,
                cb.encode(cb.ANSWER, version_id, question.id, o.code),
            )
            for o in options
        ]
        compact = question.kind is QuestionKind.SCALE and all(len(o.label) <= 3 for o in options)
        rows.extend([tuple(buttons)] if compact else [(b,) for b in buttons])
    elif question.kind is QuestionKind.MULTI:
        selected = set(_selected(draft))
        for o in question.options:
            ticked = o.code in selected
            label = ("☑ " if ticked else "☐ ") + o.label
            rows.append(
                (Button(label, cb.encode(cb.TOGGLE, version_id, question.id, o.code, 0 if ticked else 1)),)
            )
        rows.append((Button(texts.BUTTON_DONE, cb.encode(cb.DONE, version_id, question.id)),))
    elif question.kind is QuestionKind.PHONE and not phone_number_step:
        rows.append(
            (
                Button(texts.BUTTON_YES_PHONE, cb.encode(cb.PHONE, version_id, question.id, "yes")),
                Button(texts.BUTTON_NO_PHONE, cb.encode(cb.PHONE, version_id, question.id, "no")),
            )
        )
    extra: list[Button] = []
    if has_answer:
        extra.append(Button(texts.BUTTON_KEEP, cb.encode(cb.KEEP, version_id, question.id)))
    if not question.required and question.kind is not QuestionKind.PHONE:
        extra.append(Button(texts.BUTTON_SKIP, cb.encode(cb.SKIP, version_id, question.id)))
    if extra:
        rows.append(tuple(extra))
    return "\n".join(lines), tuple(rows)


def _selected(draft: Mapping[str, object]) -> list[str]:
    selected = draft.get("selected")
    return [str(s) for s in selected] if isinstance(selected, list) else []


def chosen_text(question: Question, value: AnswerValue) -> str:
    """What a question message becomes once answered: the question and the choice, no buttons."""
    return f"{question.text}\n{texts.CHOSEN.format(answer=short(question.label_of(value), 300))}"


def summary_message(
    q: Questionnaire, version_id: int, answers: Mapping[str, AnswerValue], *, anonymous: bool
) -> tuple[str, Keyboard]:
    lines = [texts.SUMMARY_HEAD]
    for i, question in enumerate(q.applicable(answers, anonymous), start=1):
        if question.id in answers:
            answer = short(question.label_of(answers[question.id]), SUMMARY_ANSWER_LIMIT)
            lines.append(f"{i}. {short(question.text, SUMMARY_QUESTION_LIMIT)}：{answer}")
    lines.append(texts.SUMMARY_TAIL)
    text = clip("\n".join(lines), MESSAGE_BUDGET)
    rows = (
        (Button(texts.BUTTON_EDIT, cb.encode(cb.SUMMARY, version_id, "edit")),),
        (Button(texts.BUTTON_SUBMIT, cb.encode(cb.SUMMARY, version_id, "submit")),),
    )
    return text, rows


def edit_list(
    q: Questionnaire, version_id: int, answers: Mapping[str, AnswerValue], *, anonymous: bool
) -> tuple[str, Keyboard]:
    rows = [
        (Button(f"{i}. {short(question.text, 20)}", cb.encode(cb.EDIT, version_id, question.id)),)
        for i, question in enumerate(q.applicable(answers, anonymous), start=1)
        if question.id in answers
    ]
    return texts.PICK_EDIT, tuple(rows)


def answers_listing(q: Questionnaire, answers: Mapping[str, AnswerValue], order: Sequence[str]) -> list[str]:
    lines = []
    for code in order:
        question = q.question(code)
        if question is not None and code in answers:
            answer = short(question.label_of(answers[code]), 200)
            lines.append(f"· {short(question.text, SUMMARY_QUESTION_LIMIT)}：{answer}")
    return lines
