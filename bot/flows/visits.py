"""Door-to-door answers (代填): a worker fills in the questionnaire for a household they visit, recorded as a
proxy submission (channel "visit", the worker as `entered_by`); the household can confirm it later from
its own phone through a signed link."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from bot import callbacks as cb
from bot import texts
from bot.alerts import display_name
from bot.callbacks import Callback
from bot.flows import gridworker, render
from bot.flows.resident import closing, edit_tapped, stale
from bot.flows.turn import Turn
from bot.links import LinkError, button_tag, deep_link, make_visit_payload, read_visit_payload
from bot.messages import Button, Reply
from storage import repository as repo
from storage import staff as staffing
from storage.models import Channel, Grid, Person, Project, Role, Submission, SubmissionStatus, utcnow

ASKING_HOUSEHOLD = "visit:"  # Person.state "visit:<grid id>" while the worker types the household label
HOUSEHOLD_LIMIT = 40
CONFIRM_LINK_DAYS = 30
RESPONDENTS = dict(texts.VISIT_RESPONDENTS)


def asking_household(person: Person) -> bool:
    return person.state.startswith(ASKING_HOUSEHOLD)


async def active_visit(t: Turn, person: Person | None) -> Submission | None:
    """The door-to-door questionnaire a worker is filling in right now, if any."""
    if person is None or person.role != Role.GRIDWORKER or person.active_submission_id is None:
        return None
    submission = await t.session.get(Submission, person.active_submission_id)
    if submission is None or submission.channel != Channel.VISIT:
        return None
    return submission if submission.status == SubmissionStatus.IN_PROGRESS else None


async def start(t: Turn, person: Person, argument: str) -> list[Reply]:
    visit = await active_visit(t, person)
    if visit is not None:
        return [Reply.send(t.chat_id, texts.VISIT_BUSY.format(household=visit.household))]
    grids, replies = await gridworker.pick_grids(t, person, argument, "visit")
    return await ask_household(t, person, grids[0]) if grids else replies


async def ask_household(t: Turn, person: Person, grid: Grid) -> list[Reply]:
    visit = await active_visit(t, person)
    if visit is not None:
        return [Reply.send(t.chat_id, texts.VISIT_BUSY.format(household=visit.household))]
    project = await t.session.get(Project, grid.project_id)
    assert project is not None
    if await repo.latest_version(t.session, project.id) is None:
        return [Reply.send(t.chat_id, texts.NO_SURVEY)]
    person.state = f"{ASKING_HOUSEHOLD}{grid.id}"
    return [Reply.send(t.chat_id, texts.VISIT_ASK_HOUSEHOLD.format(title=project.title, grid=grid.name))]


async def on_household(t: Turn, person: Person, typed: str) -> list[Reply]:
    label = " ".join(typed.split())
    if not label or len(label) > HOUSEHOLD_LIMIT or label.startswith("/"):
        return [Reply.send(t.chat_id, texts.VISIT_HOUSEHOLD_BAD)]
    grid_id = person.state.removeprefix(ASKING_HOUSEHOLD)
    person.state = ""
    grids = {g.id: g for g in await staffing.grids_of_worker(t.session, person.id)}
    grid = grids.get(int(grid_id)) if grid_id.isdigit() else None
    version = await repo.latest_version(t.session, grid.project_id) if grid is not None else None
    if grid is None or version is None:
        return [Reply.send(t.chat_id, texts.NO_GRIDS if grid is None else texts.NO_SURVEY)]
    visit = await repo.create_submission(
        t.session,
        project_id=grid.project_id,
        version_id=version.id,
        grid_id=grid.id,
        person_id=None,  # the household's own account joins only when it confirms from a phone
        channel=Channel.VISIT,
        entered_by_id=person.id,
    )
    visit.household = label
    person.active_submission_id = visit.id
    repo.audit(t.session, f"person:{person.id}", "visit.started", visit.receipt, grid_id=grid.id)
    return [Reply.send(t.chat_id, texts.VISIT_ASK_RESPONDENT, respondent_buttons(visit.id))]


def respondent_buttons(submission_id: int) -> tuple[tuple[Button, ...], ...]:
    buttons = [
        Button(label, cb.encode(cb.RESPONDENT, submission_id, code)) for code, label in RESPONDENTS.items()
    ]
    return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))


async def on_respondent_button(t: Turn, person: Person, data: Callback) -> list[Reply]:
    visit = await active_visit(t, person)
    code = data.part(1)
    if visit is None or data.part(0) != str(visit.id) or code not in RESPONDENTS or visit.respondent:
        return stale(t)
    visit.respondent = code
    q = await t.engine.questionnaire(t, visit.questionnaire_version_id)
    text, buttons = render.consent_message(q, visit.questionnaire_version_id)
    mark = texts.VISIT_RESPONDENT_MARK.format(respondent=RESPONDENTS[code])
    return closing(
        t,
        [
            *edit_tapped(t, f"{texts.VISIT_ASK_RESPONDENT}\n{mark}"),
            Reply.send(t.chat_id, f"{texts.VISIT_INTRO}\n\n{text}", buttons),
        ],
    )


def needs_respondent(visit: Submission) -> bool:
    return not visit.respondent


async def after_step(t: Turn, person: Person, visit: Submission, replies: list[Reply]) -> list[Reply]:
    """Once the visit is submitted, the worker gets the household's confirmation link instead of the
    resident's receipt (which speaks of the worker's own data)."""
    if visit.status != SubmissionStatus.SUBMITTED:
        return replies
    repo.audit(t.session, f"person:{person.id}", "visit.submitted", visit.receipt, household=visit.household)
    expires = (datetime.now(UTC) + timedelta(days=CONFIRM_LINK_DAYS)).date()
    payload = make_visit_payload(await t.engine.link_secret(t), visit.id, expires)
    done = texts.VISIT_DONE.format(
        household=visit.household,
        receipt=visit.receipt,
        link=deep_link(t.engine.bot_username, payload),
    )
    receipt = texts.SUBMITTED.format(receipt=visit.receipt)
    return [Reply.send(t.chat_id, done) if r.action == "send" and r.text == receipt else r for r in replies]


async def cancel(t: Turn, person: Person) -> list[Reply]:
    visit = await active_visit(t, person)
    if visit is not None:
        person.active_submission_id = None
        await t.session.flush()
        await repo.delete_answers(t.session, visit.id)
        repo.audit(t.session, f"person:{person.id}", "visit.cancelled", visit.receipt)
        await t.session.delete(visit)
        return [Reply.send(t.chat_id, texts.VISIT_CANCELLED)]
    if asking_household(person):
        person.state = ""
        return [Reply.send(t.chat_id, texts.VISIT_CANCELLED)]
    return [Reply.send(t.chat_id, texts.VISIT_NOTHING)]


# --- the household's side ------------------------------------------------------------------------------


async def _confirmable(t: Turn, submission_id: int) -> Submission | None:
    submission = await t.session.get(Submission, submission_id)
    if submission is None or submission.channel != Channel.VISIT:
        return None
    return submission if submission.status == SubmissionStatus.SUBMITTED else None


async def open_confirmation(t: Turn, person: Person | None, payload: str) -> list[Reply]:
    try:
        submission_id = read_visit_payload(await t.engine.link_secret(t), payload)
    except LinkError:
        return [Reply.send(t.chat_id, texts.LINK_INVALID)]
    visit = await _confirmable(t, submission_id)
    if visit is None:
        return [Reply.send(t.chat_id, texts.LINK_INVALID)]
    if visit.confirmation:
        return [Reply.send(t.chat_id, texts.VISIT_ALREADY_DONE)]
    q = await t.engine.questionnaire(t, visit.questionnaire_version_id)
    stored = await repo.answers_of(t.session, visit.id)
    listing = render.answers_listing(q, {code: a.value.get("v") for code, a in stored.items()}, list(stored))
    worker = await t.session.get(Person, visit.entered_by_id) if visit.entered_by_id else None
    project = await t.session.get(Project, visit.project_id)
    day = (visit.submitted_at or visit.started_at).astimezone(t.engine.push.quiet.zone)
    text = texts.CONFIRM_VISIT.format(
        worker=display_name(worker),
        date=f"{day.month}月{day.day}日",
        household=visit.household,
        title=project.title if project else "",
        answers="\n".join(listing),
    )
    # Only whoever opened the signed link gets buttons that work: the tag binds them to this account.
    tag = button_tag(await t.engine.link_secret(t), "visit", visit.id, t.incoming.user_id)
    buttons = (
        (
            Button(texts.BUTTON_CONFIRM_VISIT, cb.encode(cb.CONFIRM_VISIT, visit.id, "yes", tag)),
            Button(texts.BUTTON_DISPUTE_VISIT, cb.encode(cb.CONFIRM_VISIT, visit.id, "no", tag)),
        ),
    )
    return [Reply.send(t.chat_id, render.clip(text, render.MESSAGE_BUDGET), buttons)]


async def on_confirm_button(t: Turn, person: Person | None, data: Callback) -> list[Reply]:
    visit = await _confirmable(t, int(data.part(0))) if data.part(0).isdigit() else None
    expected = button_tag(await t.engine.link_secret(t), "visit", data.part(0), t.incoming.user_id)
    if visit is None or not hmac.compare_digest(data.part(2), expected):
        return stale(t)
    if visit.confirmation:
        return stale(t, texts.VISIT_ALREADY_DONE)
    person = person or await repo.ensure_person(t.session, t.incoming.user_id)
    visit.confirmed_at = utcnow()
    if data.part(1) == "yes":
        visit.confirmation = "confirmed"
        visit.person_id = person.id  # now theirs: /mydata shows it, /delete erases it
        repo.audit(t.session, f"person:{person.id}", "visit.confirmed", visit.receipt)
        return closing(
            t, [*edit_tapped(t, texts.VISIT_CONFIRMED_MARK), Reply.send(t.chat_id, texts.VISIT_CONFIRMED)]
        )
    visit.confirmation = "disputed"
    repo.audit(t.session, f"person:{person.id}", "visit.disputed", visit.receipt)
    project = await t.session.get(Project, visit.project_id)
    grid = await t.session.get(Grid, visit.grid_id) if visit.grid_id else None
    code = f"{project.code}-{grid.code}" if project and grid else (project.code if project else "")
    replies = [
        *edit_tapped(t, texts.VISIT_DISPUTED_MARK),
        Reply.send(t.chat_id, texts.VISIT_DISPUTED.format(code=code)),
    ]
    worker = await t.session.get(Person, visit.entered_by_id) if visit.entered_by_id else None
    if worker is not None:
        note = texts.VISIT_DISPUTED_WORKER.format(receipt=visit.receipt, household=visit.household)
        replies.append(Reply.send(worker.telegram_id, note))
    return closing(t, replies)
