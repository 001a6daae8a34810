"""Routes an update by who sent it: staff commands and buttons to their flows, everything else to the
resident's dialog. Roles are checked here, on every update: a resident never reaches a staff flow."""

from __future__ import annotations

from bot import callbacks as cb
from bot import texts
from bot.flows import gridworker, resident, staff, visits
from bot.flows.turn import Turn
from bot.links import is_visit_payload
from bot.messages import Incoming, Kind, Reply
from storage.models import Person, Role
from storage.staff import looks_like_invite

STAFF_ROLES = frozenset({Role.GRIDWORKER, Role.ASSESSOR, Role.ADMIN})
GRIDWORKER_COMMANDS = frozenset({"/qr", "/push", "/visit", "/cancel"})
STAFF_COMMANDS = GRIDWORKER_COMMANDS | {"/progress", "/duty"}


def is_staff(person: Person | None) -> bool:
    return person is not None and person.role in STAFF_ROLES


# The buttons of a questionnaire in progress: consent, the questions', the summary's.
_ANSWERING = frozenset(
    {cb.CONSENT, cb.ANSWER, cb.SKIP, cb.DONE, cb.TOGGLE, cb.KEEP, cb.EDIT, cb.PHONE, cb.SUMMARY}
)


def usually_direct(incoming: Incoming) -> bool:
    """Whether the update is most likely a resident going through their questionnaire: a start link, a
    typed answer or a button of the questionnaire (consent, an option, ticks, skip, done, keep, change,
    submit). The engine runs those on the driver first (storage.direct); any that turns out to need
    more is handled again through the session, so this only has to be right most of the time."""
    if incoming.kind is Kind.CALLBACK:
        data = cb.decode(incoming.callback_data)
        return data is not None and data.action in _ANSWERING
    if incoming.kind is not Kind.TEXT:
        return False
    text = incoming.text.lstrip()
    return not text.startswith("/") or text.startswith("/start")  # a start link opens a questionnaire


async def handle(t: Turn, person: Person | None) -> list[Reply]:
    """One update from `person` (None: someone the bot does not know yet), their row locked."""
    incoming = t.incoming
    if person is not None and person.blocked_bot:
        person.blocked_bot = False  # writing to the bot again means they unblocked it
    if incoming.kind is Kind.CALLBACK:
        return await on_button(t, person)
    text = incoming.text.strip() if incoming.kind is Kind.TEXT else ""
    if text.startswith("/"):
        command, _, argument = text.partition(" ")
        command = command.split("@", 1)[0].lower()
        argument = argument.strip()
        if command == "/start" and looks_like_invite(argument):
            return await staff.accept_invite(t, person, argument)
        if command == "/start" and is_visit_payload(argument):
            return await visits.open_confirmation(t, person, argument)
        if command in STAFF_COMMANDS:
            if person is None or not is_staff(person):
                return [Reply.send(t.chat_id, texts.HELP)]  # a resident gets the resident's help
            return await staff_command(t, person, command, argument)
        if command == "/help" and is_staff(person):
            assert person is not None
            return [Reply.send(t.chat_id, staff.help_text(person))]
    elif looks_like_invite(text):
        return await staff.accept_invite(t, person, text)  # a client that dropped the /start payload
    if person is not None and person.role == Role.GRIDWORKER and visits.asking_household(person):
        return await visits.on_household(t, person, text)
    return await _resident(t, person)


async def staff_command(t: Turn, person: Person, command: str, argument: str) -> list[Reply]:
    if command == "/progress":
        return await staff.progress(t, person)
    if command == "/duty":
        return await staff.duty(t, person, argument)
    if person.role != Role.GRIDWORKER:  # assessors and admins have no grid of their own
        return [Reply.send(t.chat_id, staff.help_text(person))]
    if command == "/qr":
        return await gridworker.qr(t, person, argument)
    if command == "/push":
        return await gridworker.push(t, person, argument)
    if command == "/visit":
        return await visits.start(t, person, argument)
    return await visits.cancel(t, person)


async def on_button(t: Turn, person: Person | None) -> list[Reply]:
    data = cb.decode(t.incoming.callback_data)
    if data is None:
        return await _resident(t, person)
    if data.action == cb.OPT_OUT:
        return await gridworker.opt_out(t, person)
    if data.action == cb.CONFIRM_VISIT:
        return await visits.on_confirm_button(t, person, data)
    if data.action not in cb.STAFF_ACTIONS:
        return await _resident(t, person)
    if person is None or not is_staff(person):
        return resident.stale(t)
    if data.action == cb.ALERT:
        return await staff.on_alert_button(t, person, data)
    if person.role != Role.GRIDWORKER:
        return resident.stale(t)
    if data.action == cb.PUSH:
        return await gridworker.on_push_button(t, person, data)
    if data.action == cb.GRID:
        return await gridworker.on_grid_button(t, person, data)
    return await visits.on_respondent_button(t, person, data)


async def _resident(t: Turn, person: Person | None) -> list[Reply]:
    """The resident's dialog; for a worker in the middle of a door-to-door visit, that visit's answers."""
    visit = await visits.active_visit(t, person)
    if visit is not None and visits.needs_respondent(visit):
        if t.incoming.kind is Kind.CALLBACK:
            return resident.stale(t)
        return [Reply.send(t.chat_id, texts.VISIT_ASK_RESPONDENT, visits.respondent_buttons(visit.id))]
    replies = await resident.handle_person(t, person)  # looked up and locked once, above
    if visit is not None and person is not None:
        return await visits.after_step(t, person, visit, replies)
    return replies
