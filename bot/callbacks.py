"""Button payloads: how an inline button says what it means in at most 64 bytes."""

from __future__ import annotations

from dataclasses import dataclass

CALLBACK_LIMIT = 64  # bytes, Telegram's limit for callback_data
# Questionnaire version ids are database ids; ten digits leave room for any real deployment.
VERSION_DIGITS = 10
SEPARATOR = ":"

# Actions, kept to a few letters because every byte counts against the limit.
ANSWER = "a"  # choose an option of a single-choice or scale question: a:<version>:<question>:<code>
# Tick (1) or untick (0) an option of a multiple-choice question:          t:<version>:<question>:<code>:1|0
# The target state is in the data so that a double tap changes nothing the second time.
TOGGLE = "t"
DONE = "d"  # finish a multiple-choice question:                        d:<version>:<question>
SKIP = "s"  # skip an optional question:                                s:<version>:<question>
PHONE = "p"  # separate consent for a phone number:                    p:<version>:<question>:yes|no
EDIT = "e"  # pick a question to change from the summary:               e:<version>:<question>
KEEP = "k"  # keep the answer already given (after /back or an edit):   k:<version>:<question>
CONSENT = "c"  # consent to the notice:                                 c:<version>:agree|anon|decline
SUMMARY = "m"  # on the summary:                                        m:<version>:submit|edit
DELETE = "x"  # confirm erasing one's data:                             x:yes|no
# Staff and outreach (bot/flows/router.py sends these to the right flow before the resident's dialog):
ALERT = "al"  # acknowledge or escalate an urgent alert:                al:<alert>:ack|esc
PUSH = "pu"  # start a push to the worker's grids:                      pu:<grid or 0>:unanswered|all|cancel
GRID = "g"  # pick one of the worker's grids for a command:             g:qr|push|visit|progress:<grid or 0>
RESPONDENT = "vr"  # who answers at the door:                           vr:<submission>:<code>
CONFIRM_VISIT = "vc"  # the household confirms a proxy answer:          vc:<submission>:yes|no:<tag>
OPT_OUT = "po"  # no more reminders:                                    po
STAFF_ACTIONS = frozenset({ALERT, PUSH, GRID, RESPONDENT})


@dataclass(frozen=True, slots=True)
class Callback:
    action: str
    parts: tuple[str, ...]

    def part(self, index: int) -> str:
        return self.parts[index] if index < len(self.parts) else ""


def encode(action: str, *parts: object) -> str:
    data = SEPARATOR.join([action, *(str(p) for p in parts)])
    if len(data.encode()) > CALLBACK_LIMIT:
        raise ValueError(f"button data over {CALLBACK_LIMIT} bytes: {data!r}")
    return data


def decode(data: str) -> Callback | None:
    """Parse button data; None for anything we did not make (clients may send garbage)."""
    if not data or len(data.encode()) > CALLBACK_LIMIT:
        return None
    action, *parts = data.split(SEPARATOR)
    resident_actions = {ANSWER, TOGGLE, DONE, SKIP, PHONE, EDIT, KEEP, CONSENT, SUMMARY, DELETE}
    if action not in resident_actions | STAFF_ACTIONS | {CONFIRM_VISIT, OPT_OUT}:
        return None
    return Callback(action, tuple(parts))


def worst_case_length(question_id: str, code: str = "") -> int:
    """The longest button data a question can produce, for `minyi survey check`."""
    longest_code = max(code, "yes", "submit", key=len)
    return len(SEPARATOR.join(["t", "9" * VERSION_DIGITS, question_id, longest_code, "1"]).encode())
