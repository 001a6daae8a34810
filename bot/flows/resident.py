"""The resident's dialog: link or code → consent → questions with skip logic → summary → receipt; plus
/back, /mydata, /delete and /help. Every function runs inside the update's transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot import callbacks as cb
from bot import texts
from bot.flows import render
from bot.flows.answers import (
    DONE_WORDS,
    SKIP_WORDS,
    parse_number,
    parse_options,
    parse_phone,
    says,
    says_no,
    says_yes,
)
from bot.flows.turn import Turn
from bot.links import LinkError, LinkTarget, read_payload
from bot.messages import Button, Kind, Reply
from bot.questionnaire import AnswerValue, Question, QuestionKind, Questionnaire, match_option, normalise
from bot.tagging import SELF_HARM
from storage import repository as repo
from storage.models import Channel, Grid, Person, Project, Role, Submission, SubmissionStatus, utcnow
from storage.repository import StoredAnswer

CONSENT, SUMMARY = "consent", "summary"
CONFIRM_DELETE = "confirm_delete"
_LOOKS_LIKE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{1,40}$")


async def handle_person(t: Turn, person: Person | None) -> list[Reply]:
    """The dialog for a sender already looked up (and row-locked) in this transaction."""
    incoming = t.incoming
    if incoming.kind is Kind.CALLBACK:
        return await on_button(t, person)
    text = incoming.text.strip()
    if incoming.kind is Kind.TEXT and text.startswith("/"):
        return await on_command(t, person, text)
    submission = await active_submission(t, person)
    if submission is not None:
        assert person is not None
        return await on_message(t, person, submission)
    if incoming.kind is Kind.TEXT and _LOOKS_LIKE_CODE.match(text):
        return await start_from_code(t, person, text)
    if person is not None and any(s.status == SubmissionStatus.SUBMITTED for s in await _own(t, person)):
        return [send(t, texts.HELP)]
    return [send(t, texts.ASK_CODE)]


def send(t: Turn, text: str, buttons: render.Keyboard = ()) -> Reply:
    return Reply.send(t.chat_id, text, buttons)


async def _own(t: Turn, person: Person) -> list[Submission]:
    return await t.submissions_of_person(person.id)


async def active_submission(t: Turn, person: Person | None) -> Submission | None:
    if person is None or person.active_submission_id is None:
        return None
    submission = t.loaded
    if submission is None or submission.id != person.active_submission_id:
        submission = await t.session.get(Submission, person.active_submission_id)
    if submission is None or submission.status != SubmissionStatus.IN_PROGRESS:
        return None
    return submission


# --- commands ----------------------------------------------------------------------------------------


async def on_command(t: Turn, person: Person | None, text: str) -> list[Reply]:
    command, _, argument = text.partition(" ")
    command = command.split("@", 1)[0].lower()  # "/start@minyi_bot" in some clients
    argument = argument.strip()
    if person is not None and person.state == CONFIRM_DELETE and command != "/delete":
        person.state = ""
    if command == "/start":
        return await on_start(t, person, argument)
    if command == "/help":
        return [send(t, texts.HELP)]
    if command == "/back":
        return await on_back(t, person)
    if command == "/mydata":
        return await on_mydata(t, person)
    if command == "/delete":
        return await on_delete(t, person)
    return [send(t, texts.UNKNOWN_COMMAND)]


async def on_start(t: Turn, person: Person | None, payload: str) -> list[Reply]:
    if not payload:
        submission = await active_submission(t, person)
        if submission is not None:
            return [await ask_current(t, submission, note=texts.WELCOME_BACK)]
        return [send(t, texts.ASK_CODE)]
    try:
        target = read_payload(await t.engine.link_secret(t), payload)
    except LinkError:
        return [send(t, texts.LINK_INVALID)]
    project = await t.get(Project, target.project_id)
    grid = await t.get(Grid, target.grid_id) if target.grid_id else None
    if project is None or (grid is not None and grid.project_id != project.id):
        return [send(t, texts.LINK_INVALID)]
    return await start_survey(t, person, project, grid, target)


async def start_from_code(t: Turn, person: Person | None, typed: str) -> list[Reply]:
    found = await repo.find_typed_code(t.session, typed)
    if found is None:
        return [send(t, texts.CODE_NOT_FOUND)]
    project, grid = found
    return await start_survey(t, person, project, grid, None)


async def start_survey(
    t: Turn, person: Person | None, project: Project, grid: Grid | None, target: LinkTarget | None
) -> list[Reply]:
    version_id = await t.latest_version_id(project.id)
    if version_id is None:
        return [send(t, texts.NO_SURVEY)]
    if person is not None:
        for earlier in await _own(t, person):
            if earlier.project_id != project.id or earlier.channel != Channel.TELEGRAM:
                continue
            if earlier.status == SubmissionStatus.SUBMITTED:
                return [send(t, texts.ALREADY_SUBMITTED.format(receipt=earlier.receipt))]
            if earlier.status == SubmissionStatus.IN_PROGRESS:
                person.active_submission_id = earlier.id
                return [await ask_current(t, earlier, note=texts.WELCOME_BACK)]
    person = person or await t.ensure_person(t.incoming.user_id)
    submission = await t.create_submission(
        project_id=project.id,
        version_id=version_id,
        grid_id=grid.id if grid else None,
        person_id=person.id,
        channel=Channel.TELEGRAM,
        referrer_id=(target.worker_id or None) if target else None,
    )
    person.active_submission_id = submission.id
    q = await t.engine.questionnaire(t, version_id)
    return [send(t, *render.consent_message(q, version_id))]


async def on_back(t: Turn, person: Person | None) -> list[Reply]:
    submission = await active_submission(t, person)
    if submission is None:
        return [send(t, texts.ASK_CODE)]
    if submission.current_step == CONSENT:
        return [await ask_current(t, submission)]
    q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
    answers = await _answer_values(t, submission)
    step = None if submission.current_step == SUMMARY else submission.current_step
    previous = q.previous(step, answers, submission.anonymous)
    if previous is None:
        return [await ask_current(t, submission, note=texts.FIRST_QUESTION)]
    _go_to(submission, previous, answers)
    return [await ask_current(t, submission)]


async def on_mydata(t: Turn, person: Person | None) -> list[Reply]:
    own = [s for s in await _own(t, person)] if person is not None else []
    own = [s for s in own if s.current_step != CONSENT]
    if not own:
        return [send(t, texts.MYDATA_NONE)]
    parts = [texts.MYDATA_HEAD]
    for submission in own:
        project = await t.session.get(Project, submission.project_id)
        q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
        answers = await stored_answers(t, submission)
        values = {code: a.value.get("v") for code, a in answers.items()}
        parts.append(
            texts.MYDATA_ITEM.format(
                title=project.title if project else "",
                receipt=submission.receipt,
                status=texts.STATUS_WORDS.get(submission.status, submission.status),
            )
        )
        parts.extend(render.answers_listing(q, values, list(answers)))
    text = "\n".join(parts)
    return [send(t, render.clip(text, render.MESSAGE_BUDGET))]


async def on_delete(t: Turn, person: Person | None) -> list[Reply]:
    if person is None or not [s for s in await _own(t, person) if s.status != SubmissionStatus.WITHDRAWN]:
        return [send(t, texts.DELETE_NONE)]
    person.state = CONFIRM_DELETE
    buttons = (
        (
            Button(texts.BUTTON_DELETE_YES, cb.encode(cb.DELETE, "yes")),
            Button(texts.BUTTON_DELETE_NO, cb.encode(cb.DELETE, "no")),
        ),
    )
    return [send(t, texts.DELETE_CONFIRM, buttons)]


async def erase_person(t: Turn, person: Person) -> None:
    """Withdraw every submission of this person and erase their answers and their account."""
    person.active_submission_id = None
    await t.session.flush()
    for submission in await _own(t, person):
        await repo.delete_answers(t.session, submission.id)
        t.answers.pop(submission.id, None)
        repo.audit(t.session, "resident", "submission.withdrawn", submission.receipt)
        if submission.current_step == CONSENT:
            await t.session.delete(submission)
            continue
        submission.status = SubmissionStatus.WITHDRAWN
        submission.withdrawn_at = utcnow()
        submission.person_id = None
        submission.draft = {}
        submission.answer_count = 0
    if person.role == Role.RESIDENT:
        await t.session.delete(person)
    else:
        person.state = ""
    await t.session.flush()


# --- buttons -----------------------------------------------------------------------------------------


def stale(t: Turn, note: str = texts.STALE_BUTTON) -> list[Reply]:
    return [Reply.answer_callback(t.incoming.callback_id, note)]


def closing(t: Turn, replies: list[Reply], toast: str = "") -> list[Reply]:
    """Every button tap ends with exactly one answer to the callback, after everything else was sent;
    the same step reached by typing needs none."""
    if t.incoming.kind is not Kind.CALLBACK:
        return replies
    return [*replies, Reply.answer_callback(t.incoming.callback_id, toast)]


def edit_tapped(t: Turn, text: str) -> list[Reply]:
    """Turn the tapped message into a record of the choice, without buttons that could be tapped again."""
    if t.incoming.message_id is None:
        return []
    return [Reply.edit(t.chat_id, t.incoming.message_id, text)]


async def on_button(t: Turn, person: Person | None) -> list[Reply]:
    data = cb.decode(t.incoming.callback_data)
    if data is None or person is None:
        return stale(t)
    if data.action == cb.DELETE:
        return await on_delete_button(t, person, data.part(0))
    submission = await active_submission(t, person)
    if submission is None or data.part(0) != str(submission.questionnaire_version_id):
        return stale(t)
    q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
    if data.action == cb.CONSENT:
        if submission.current_step != CONSENT:
            return stale(t)
        return await on_consent(t, person, submission, q, data.part(1))
    if data.action == cb.SUMMARY:
        if submission.current_step != SUMMARY:
            return stale(t)
        if data.part(1) == "submit":
            return await submit(t, person, submission, q)
        answers = await _answer_values(t, submission)
        return closing(
            t,
            [
                send(
                    t,
                    *render.edit_list(
                        q, submission.questionnaire_version_id, answers, anonymous=submission.anonymous
                    ),
                )
            ],
        )
    if data.action == cb.EDIT:
        question = q.question(data.part(1))
        if submission.current_step != SUMMARY or question is None:
            return stale(t)
        answers = await _answer_values(t, submission)
        submission.editing = True
        _go_to(submission, question, answers)
        return closing(t, [*edit_tapped(t, texts.PICK_EDIT), await ask_current(t, submission)])
    question = q.question(data.part(1))
    if question is None or submission.current_step != question.id:
        return stale(t)
    stored = await stored_answers(t, submission)
    if data.action == cb.ANSWER and question.kind in (QuestionKind.SINGLE, QuestionKind.SCALE):
        option = question.option(data.part(2))
        if option is None:
            return stale(t)
        value: AnswerValue = int(option.code) if question.kind is QuestionKind.SCALE else option.code
        return await accept(t, submission, q, question, value, option.label, stored, tapped=True)
    if data.action == cb.TOGGLE and question.kind is QuestionKind.MULTI:
        return await on_toggle(t, submission, q, question, data.part(2), data.part(3) == "1", stored)
    if data.action == cb.DONE and question.kind is QuestionKind.MULTI:
        return await on_multi_done(t, submission, q, question, stored, tapped=True)
    if data.action == cb.SKIP and not question.required:
        return await accept(t, submission, q, question, None, "", stored, tapped=True)
    if data.action == cb.KEEP and question.id in stored:
        return await advance_replies(
            t,
            submission,
            q,
            question,
            tapped_text=render.chosen_text(question, stored[question.id].value.get("v")),
        )
    if data.action == cb.PHONE and question.kind is QuestionKind.PHONE:
        return await on_phone_consent(t, submission, q, question, data.part(2) == "yes", stored, tapped=True)
    return stale(t)


async def on_delete_button(t: Turn, person: Person, choice: str) -> list[Reply]:
    if person.state != CONFIRM_DELETE:
        return stale(t)
    if choice == "yes":
        await erase_person(t, person)
        return closing(t, [*edit_tapped(t, texts.DELETED_MARK), send(t, texts.DELETED)])
    person.state = ""
    replies = [*edit_tapped(t, texts.KEPT_MARK)]
    submission = await active_submission(t, person)
    if submission is not None:
        replies.append(await ask_current(t, submission, note=texts.DELETE_KEPT))
    else:
        replies.append(send(t, texts.DELETE_KEPT))
    return closing(t, replies)


async def on_consent(
    t: Turn, person: Person, submission: Submission, q: Questionnaire, choice: str
) -> list[Reply]:
    if choice == "decline":
        await decline(t, person, submission)
        return closing(t, [*edit_tapped(t, texts.DECLINED_MARK), send(t, texts.DECLINED)])
    if choice == "anon" and not q.allows_anonymous:
        return stale(t)
    submission.anonymous = choice == "anon"
    submission.consent_at = utcnow()
    await t.audit("resident", "consent.given", submission.receipt, anonymous=submission.anonymous)
    mark = texts.CONSENT_ANONYMOUS if submission.anonymous else texts.CONSENT_AGREED
    first = q.next_unanswered({}, submission.anonymous)
    replies = edit_tapped(t, f"{q.title}\n{mark}")
    if first is None:
        submission.current_step = SUMMARY
    else:
        _go_to(submission, first, {})
    return closing(t, [*replies, await ask_current(t, submission)])


async def decline(t: Turn, person: Person, submission: Submission) -> None:
    """Declining keeps nothing personal: the draft submission goes, and so does the person if that was all."""
    repo.audit(
        t.session,
        "system",
        "consent.declined",
        "",
        project_id=submission.project_id,
        grid_id=submission.grid_id,
    )
    person.active_submission_id = None
    await t.session.flush()
    await t.session.delete(submission)
    await t.session.flush()
    if person.role == Role.RESIDENT and not await _own(t, person):
        await t.session.delete(person)


async def on_toggle(
    t: Turn,
    submission: Submission,
    q: Questionnaire,
    question: Question,
    code: str,
    tick: bool,
    answers: Mapping[str, StoredAnswer],
) -> list[Reply]:
    if question.option(code) is None:
        return stale(t)
    selected = [s for s in submission.draft.get("selected", []) if s != code]
    if tick:
        if question.maximum is not None and len(selected) >= question.maximum:
            return stale(t, texts.TOO_MANY.format(n=int(question.maximum)))
        selected.append(code)
    order = [o.code for o in question.options]
    submission.draft = {**submission.draft, "selected": sorted(selected, key=order.index)}
    values = {k: a.value.get("v") for k, a in answers.items()}
    text, buttons = render.question_message(
        q,
        submission.questionnaire_version_id,
        question,
        values,
        anonymous=submission.anonymous,
        draft=submission.draft,
    )
    if t.incoming.message_id is None:
        return closing(t, [send(t, text, buttons)])
    return closing(t, [Reply.edit(t.chat_id, t.incoming.message_id, text, buttons)])


async def on_multi_done(
    t: Turn,
    submission: Submission,
    q: Questionnaire,
    question: Question,
    answers: Mapping[str, StoredAnswer],
    *,
    tapped: bool,
) -> list[Reply]:
    selected = [str(s) for s in submission.draft.get("selected", [])]
    fewest = int(question.minimum) if question.minimum is not None else (1 if question.required else 0)
    if len(selected) < fewest:
        problem = texts.TOO_FEW.format(n=fewest)
        return stale(t, problem) if tapped else [await ask_current(t, submission, note=problem)]
    labels = "、".join(o.label for o in question.options if o.code in selected)
    return await accept(t, submission, q, question, selected, labels, answers, tapped=tapped)


async def on_phone_consent(
    t: Turn,
    submission: Submission,
    q: Questionnaire,
    question: Question,
    agreed: bool,
    answers: Mapping[str, StoredAnswer],
    *,
    tapped: bool,
) -> list[Reply]:
    if not agreed:
        return await accept(t, submission, q, question, None, "", answers, tapped=tapped)
    submission.draft = {"phone_consent": True}
    await t.audit("resident", "consent.phone", submission.receipt)
    replies = (
        edit_tapped(t, f"{question.consent}\n{texts.CHOSEN.format(answer=texts.BUTTON_YES_PHONE)}")
        if tapped
        else []
    )
    reply = [*replies, await ask_current(t, submission)]
    return closing(t, reply)


# --- typed answers -----------------------------------------------------------------------------------


async def on_message(t: Turn, person: Person, submission: Submission) -> list[Reply]:
    incoming = t.incoming
    if submission.current_step == CONSENT:
        return await typed_consent(t, person, submission)
    if incoming.kind is not Kind.TEXT:
        return [await ask_current(t, submission, note=texts.REASK_MEDIA)]
    q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
    text = incoming.text.strip()
    if submission.current_step == SUMMARY:
        if says(text, ("提交", "确认", "确认提交")):
            return await submit(t, person, submission, q, tapped=False)
        if says(text, ("修改", "改")):
            answers = await _answer_values(t, submission)
            return [
                send(
                    t,
                    *render.edit_list(
                        q, submission.questionnaire_version_id, answers, anonymous=submission.anonymous
                    ),
                )
            ]
        return [await ask_current(t, submission)]
    question = q.question(submission.current_step)
    if question is None:  # cannot happen with an immutable version; recover by going to the summary
        submission.current_step = SUMMARY
        return [await ask_current(t, submission)]
    stored = await stored_answers(t, submission)
    if not text:
        return [await ask_current(t, submission, note=texts.REASK_EMPTY)]
    if question.id in stored and normalise(text) == normalise(texts.BUTTON_KEEP):
        return await advance_replies(t, submission, q, question)
    if not question.required and question.kind is not QuestionKind.PHONE and says(text, SKIP_WORDS):
        return await accept(t, submission, q, question, None, text, stored, tapped=False)
    return await typed_answer(t, submission, q, question, text, stored)


async def typed_consent(t: Turn, person: Person, submission: Submission) -> list[Reply]:
    q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
    text = t.incoming.text.strip() if t.incoming.kind is Kind.TEXT else ""
    choice = ""
    if text and (says_no(text) or normalise(text) == normalise(q.consent.decline)):
        choice = "decline"
    elif (
        text and q.allows_anonymous and ("匿名" in text or normalise(text) == normalise(q.consent.anonymous))
    ):
        choice = "anon"
    elif text and (says_yes(text) or normalise(text) == normalise(q.consent.agree)):
        choice = "agree"
    if not choice:
        note = texts.REASK_MEDIA if t.incoming.kind is not Kind.TEXT else texts.CONSENT_REASK
        return [await ask_current(t, submission, note=note)]
    return await on_consent(t, person, submission, q, choice)


async def typed_answer(
    t: Turn,
    submission: Submission,
    q: Questionnaire,
    question: Question,
    text: str,
    answers: Mapping[str, StoredAnswer],
) -> list[Reply]:
    async def reask(note: str) -> list[Reply]:
        return [await ask_current(t, submission, note=note)]

    kind = question.kind
    if kind is QuestionKind.SINGLE:
        option = match_option(question, text)
        if option is None:
            return await reask(texts.REASK_CHOICE)
        return await accept(t, submission, q, question, option.code, text, answers, tapped=False)
    if kind is QuestionKind.SCALE:
        option = match_option(question, text)
        if option is None:
            first, last = int(question.minimum or 0), int(question.maximum or 0)
            return await reask(texts.REASK_SCALE.format(low=first, high=last))
        return await accept(t, submission, q, question, int(option.code), text, answers, tapped=False)
    if kind is QuestionKind.MULTI:
        if says(text, DONE_WORDS):
            return await on_multi_done(t, submission, q, question, answers, tapped=False)
        options = parse_options(question, text)
        if options is None:
            return await reask(texts.REASK_MULTI)
        if question.maximum is not None and len(options) > question.maximum:
            return await reask(texts.TOO_MANY.format(n=int(question.maximum)))
        chosen = [o.code for o in question.options if o in options]
        submission.draft = {**submission.draft, "selected": chosen}
        return await on_multi_done(t, submission, q, question, answers, tapped=False)
    if kind is QuestionKind.TEXT:
        if len(text) > question.max_length:
            return await reask(texts.REASK_TOO_LONG.format(length=len(text), limit=question.max_length))
        return await accept(t, submission, q, question, text, text, answers, tapped=False)
    if kind is QuestionKind.NUMBER:
        number = parse_number(text)
        if number is None:
            return await reask(texts.REASK_NUMBER)
        if question.integer and number != int(number):
            return await reask(texts.REASK_INTEGER)
        low, high = question.minimum, question.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            return await reask(texts.REASK_RANGE.format(low=_plain(low), high=_plain(high)))
        value: AnswerValue = int(number) if question.integer else number
        return await accept(t, submission, q, question, value, text, answers, tapped=False)
    # phone: first the separate consent, then the number
    if submission.draft.get("phone_consent") is not True:
        if says_no(text):
            return await on_phone_consent(t, submission, q, question, False, answers, tapped=False)
        if says_yes(text):
            return await on_phone_consent(t, submission, q, question, True, answers, tapped=False)
        if parse_phone(text) is None:
            return await reask(texts.REASK_PHONE_CONSENT)
        # A number typed straight away is as clear a yes as the button.
        await t.audit("resident", "consent.phone", submission.receipt)
    phone = parse_phone(text)
    if phone is None:
        return await reask(texts.REASK_PHONE)
    return await accept(t, submission, q, question, phone, "", answers, tapped=False)


def _plain(number: float | None) -> str:
    if number is None:
        return ""
    return str(int(number)) if number == int(number) else str(number)


# --- moving through the questionnaire ----------------------------------------------------------------


async def stored_answers(t: Turn, submission: Submission) -> dict[str, StoredAnswer]:
    """The submission's answers in the order given, kept current by `accept`: read once per update, or
    not at all when the engine still knows them from the resident's previous update."""
    cached = t.answers.get(submission.id)
    if cached is None:
        known = t.engine.answers.get(submission)
        cached = known if known is not None else await t.answers_of(submission.id)
        t.answers[submission.id] = cached
        # Only what was committed may be remembered for the next update.
        t.after_commit.append(lambda: t.engine.answers.keep(submission, t.answers.get(submission.id)))
    return cached


async def _answer_values(t: Turn, submission: Submission) -> dict[str, AnswerValue]:
    return _values(await stored_answers(t, submission))


def _go_to(submission: Submission, question: Question, answers: Mapping[str, AnswerValue]) -> None:
    submission.current_step = question.id
    submission.draft = _draft_for(question, answers)


def _draft_for(question: Question, answers: Mapping[str, AnswerValue]) -> dict[str, object]:
    """A question's unfinished input when it is asked: a multiple choice starts from its answer."""
    if question.kind is QuestionKind.MULTI:
        current = answers.get(question.id)
        return {"selected": list(current) if isinstance(current, list) else []}
    return {}


async def accept(
    t: Turn,
    submission: Submission,
    q: Questionnaire,
    question: Question,
    value: AnswerValue,
    raw_text: str,
    answers: Mapping[str, StoredAnswer],
    *,
    tapped: bool,
) -> list[Reply]:
    """Store the answer (committed with this update, before any reply is sent) and move on."""
    # The step it moves to is decided first, so the answer and the submission's new step are written
    # together (one statement on PostgreSQL) and the session has nothing left to write at commit.
    answer = await t.save_answer(
        submission,
        question.id,
        value,
        raw_text=raw_text,
        step=_step_after(submission, q, question, {**_values(answers), question.id: value}),
    )
    cached = t.answers.get(submission.id)
    if cached is not None:  # now the latest answer given, as answers_of would order it
        cached.pop(question.id, None)
        cached[question.id] = answer
    if question.kind is QuestionKind.TEXT and question.grievance and isinstance(value, str):
        care = await tag_grievance(t, submission, answer, value)
        if care is not None:
            return [care, *await _next_replies(t, submission)]
    if not tapped:
        return await _next_replies(t, submission)
    return await _next_replies(t, submission, tapped_text=render.chosen_text(question, value))


def _values(answers: Mapping[str, StoredAnswer]) -> dict[str, AnswerValue]:
    return {code: a.value.get("v") for code, a in answers.items()}


async def advance_replies(
    t: Turn, submission: Submission, q: Questionnaire, answered: Question, *, tapped_text: str | None = None
) -> list[Reply]:
    step = _step_after(submission, q, answered, await _answer_values(t, submission))
    submission.current_step, submission.draft, submission.editing = step
    return await _next_replies(t, submission, tapped_text=tapped_text)


def _step_after(
    submission: Submission, q: Questionnaire, answered: Question, answers: Mapping[str, AnswerValue]
) -> repo.Step:
    """Where the submission goes past `answered`: the next question that applies, or the summary."""
    following: Question | None
    if submission.editing:
        following = q.next_unanswered(answers, submission.anonymous)
    else:
        start = q.index(answered.id) + 1
        following = next(
            (x for x in q.questions[start:] if q.applies(x, answers, submission.anonymous)), None
        )
        following = following or q.next_unanswered(answers, submission.anonymous)
    if following is None:
        return repo.Step(SUMMARY, {}, False)
    return repo.Step(following.id, _draft_for(following, answers), submission.editing)


async def _next_replies(t: Turn, submission: Submission, *, tapped_text: str | None = None) -> list[Reply]:
    next_message = await ask_current(t, submission)
    if tapped_text is None:
        return [next_message]
    return closing(t, [*edit_tapped(t, tapped_text), next_message])


async def ask_current(t: Turn, submission: Submission, *, note: str = "") -> Reply:
    """The message for wherever the submission stands, optionally after a short note."""
    q = await t.engine.questionnaire(t, submission.questionnaire_version_id)
    version_id = submission.questionnaire_version_id
    if submission.current_step == CONSENT:
        text, buttons = render.consent_message(q, version_id)
    else:
        answers = await _answer_values(t, submission)
        question = q.question(submission.current_step)
        if question is None:
            text, buttons = render.summary_message(q, version_id, answers, anonymous=submission.anonymous)
        else:
            text, buttons = render.question_message(
                q, version_id, question, answers, anonymous=submission.anonymous, draft=submission.draft
            )
    return send(t, f"{note}\n\n{text}" if note else text, buttons)


async def submit(
    t: Turn, person: Person, submission: Submission, q: Questionnaire, *, tapped: bool = True
) -> list[Reply]:
    answers = await _answer_values(t, submission)
    missing = q.next_unanswered(answers, submission.anonymous)
    if missing is not None:  # only reachable if skip logic changed what applies; ask what is missing
        _go_to(submission, missing, answers)
        reply = await ask_current(t, submission)
        return closing(t, [reply])
    asked = {x.id for x in q.applicable(answers, submission.anonymous)}
    # Answers to questions that no longer apply (after a change of an earlier answer) are not submitted.
    await t.delete_answers(submission.id, [code for code in answers if code not in asked])
    t.answers.pop(submission.id, None)
    submission.status = SubmissionStatus.SUBMITTED
    submission.submitted_at = utcnow()
    submission.current_step = SUMMARY
    submission.draft = {}
    person.active_submission_id = None
    await t.audit("resident", "submission.submitted", submission.receipt)
    receipt = send(t, texts.SUBMITTED.format(receipt=submission.receipt))
    if not tapped:
        return [receipt]
    summary_text, _ = render.summary_message(
        q, submission.questionnaire_version_id, answers, anonymous=submission.anonymous
    )
    return closing(t, [*edit_tapped(t, f"{summary_text}\n{texts.SUBMITTED_MARK}"), receipt])


async def tag_grievance(t: Turn, submission: Submission, answer: StoredAnswer, text: str) -> Reply | None:
    """Rules and redaction now, in this transaction; the classifier after the commit. Returns a caring
    reply when the resident may be at risk of harming themselves."""
    quick = t.engine.tagger.quick(text)
    await t.save_tags(answer.id, redacted=quick.redacted, urgent=quick.urgent, signals=list(quick.signals))
    if quick.urgent:
        repo.queue_alert(
            t.session, answer.id, submission, signals=list(quick.signals), redacted=quick.redacted
        )
    answer_id = answer.id
    t.after_commit.append(lambda: t.engine.tagging.schedule(answer_id, text))
    if SELF_HARM in quick.signals:
        return send(t, texts.CARE.format(line=t.engine.crisis_line))
    return None
