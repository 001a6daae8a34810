"""DialogEngine.handle(Incoming) -> list[Reply]: one user at a time, each update once, state in the DB."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from bot import texts
from bot.flows import router
from bot.flows.turn import Turn
from bot.messages import Incoming, Kind, Reply
from bot.push import PushSettings
from bot.questionnaire import Questionnaire
from bot.survey_file import parse_survey
from bot.tagging import BackgroundTagging, NlpTagger, Tagger
from storage import direct
from storage import repository as repo
from storage.database import Database, is_transient
from storage.direct import NeedsSession
from storage.models import Submission, SubmissionStatus
from storage.repository import StoredAnswer

log = logging.getLogger(__name__)

Deliver = Callable[[Sequence[Reply]], Awaitable[None]]
LINK_SECRET_SETTING = "link_secret"
# Transient database failures (a PostgreSQL restart, a serialisation conflict) are retried this often,
# waiting 0.4, 0.8, ... 6.4 s in between: about 12 s, longer than a PostgreSQL restart takes.
ATTEMPTS = 6
QUESTIONNAIRE_CACHE = 32  # parsed questionnaire versions kept per process
ANSWER_CACHE = 1024  # questionnaires in progress whose answers are remembered between updates


class UserLocks:
    """One asyncio lock per user, created on demand and dropped when nobody holds or waits for it,
    so the table never grows past the number of users with an update in flight."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        entry = self._locks.get(user_id)
        if entry is None:
            entry = self._locks[user_id] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[user_id]


class AnswerCache:
    """The answers of questionnaires in progress, remembered from one update of a resident to the next,
    so a step does not read them all again (a query, and rows to build, on every update).

    An entry is used only while it provably matches the database: the submission (its receipt: ids can
    be reused by SQLite) is still in progress, and its `answer_count`, which every saved answer raises
    and which is read under the person's row lock, is the one the entry was made with. Only answers
    committed by this process are kept; another process's answer changes the count, so its entry is
    read again. Bounded: the least recently used entries go first, and a finished one at once.
    """

    def __init__(self, size: int = ANSWER_CACHE) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[str, int, dict[str, StoredAnswer]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, submission: Submission) -> dict[str, StoredAnswer] | None:
        entry = self._entries.get(submission.id)
        if entry is None:
            return None
        receipt, count, answers = entry
        if (
            receipt != submission.receipt
            or count != submission.answer_count
            or submission.status != SubmissionStatus.IN_PROGRESS
        ):
            del self._entries[submission.id]
            return None
        self._entries.move_to_end(submission.id)
        return dict(answers)  # the update changes its own copy

    def keep(self, submission: Submission, answers: Mapping[str, StoredAnswer] | None) -> None:
        """After commit: remember the submission's answers as committed (None: forget them)."""
        if answers is None or submission.status != SubmissionStatus.IN_PROGRESS:
            self._entries.pop(submission.id, None)
            return
        self._entries[submission.id] = (submission.receipt, submission.answer_count, dict(answers))
        self._entries.move_to_end(submission.id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class DialogEngine:
    def __init__(
        self,
        db: Database,
        *,
        bot_username: str = "",
        link_secret: bytes | None = None,
        tagger: Tagger | None = None,
        crisis_line: str = texts.DEFAULT_CRISIS_LINE,
        push: PushSettings | None = None,
    ) -> None:
        self.db = db
        # Quiet hours and the local time zone, which staff messages show; pacing is bot.dispatch's.
        self.push = push or PushSettings()
        self.bot_username = bot_username
        self.crisis_line = crisis_line
        self.locks = UserLocks()
        self.tagger = tagger or NlpTagger()
        self.tagging = BackgroundTagging(db, self.tagger)
        self._link_secret = link_secret
        # Published versions never change, so a parsed questionnaire can be kept for the process's life;
        # a deployment has a handful of them (bounded all the same: the oldest parsed goes first).
        self._questionnaires: dict[int, Questionnaire] = {}
        self.answers = AnswerCache()

    async def handle(self, incoming: Incoming, deliver: Deliver | None = None) -> list[Reply]:
        """Handle one update. Its effects are committed before `deliver` sends the replies, and one
        user's replies are delivered in the order their updates were handled."""
        if incoming.chat_type != "private":
            replies = self._group_reply(incoming)
            if deliver and replies:
                await deliver(replies)
            return replies
        async with self.locks.hold(incoming.user_id):
            replies = await self._handle_committed(incoming)
            if deliver and replies:
                await deliver(replies)
        return replies

    async def _handle_committed(self, incoming: Incoming) -> list[Reply]:
        direct_first = router.usually_direct(incoming)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if direct_first:
                    handled = await self._handle_direct(incoming)
                    if handled is not None:
                        return handled
                async with self.db.transaction() as session:
                    claimed, person, active = await repo.claim_update_and_sender(
                        session, incoming.update_id, incoming.user_id
                    )
                    if not claimed:
                        return []  # delivered before: it changed what it had to change then
                    turn = Turn(session, incoming, self, loaded=active)
                    # Staff flows by role, else the resident's; the sender's row is locked until commit,
                    # and the questionnaire they are in comes with them (`turn.loaded`).
                    replies = await router.handle(turn, person)
                for action in turn.after_commit:
                    action()
                return replies
            except Exception as error:
                if attempt == ATTEMPTS or not is_transient(error):
                    raise
                log.warning("database busy, retrying update %s (%s)", incoming.update_id, error)
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def _handle_direct(self, incoming: Incoming) -> list[Reply] | None:
        """The update through the same flows, its statements on the driver (storage.direct); None when it
        needed the session after all: it was rolled back, and nothing of it is left."""
        try:
            async with direct.transaction(self.db) as transaction:
                claimed, person, active = await transaction.claim_update_and_sender(
                    incoming.update_id, incoming.user_id
                )
                if not claimed:
                    return []
                turn = Turn(None, incoming, self, loaded=active, direct=transaction)
                replies = await router.handle(turn, person)
                await transaction.write_changes()
        except NeedsSession:
            return None
        for action in turn.after_commit:
            action()
        return replies

    def _group_reply(self, incoming: Incoming) -> list[Reply]:
        # In a group the bot never asks anything; it answers a command with a hint to talk privately.
        if incoming.kind is Kind.TEXT and incoming.text.startswith("/"):
            return [Reply.send(incoming.chat_id, texts.GROUP_HINT)]
        return []

    async def questionnaire(self, turn: Turn, version_id: int) -> Questionnaire:
        cached = self._questionnaires.get(version_id)
        if cached is None:
            row = await repo.version_by_id(turn.session, version_id)
            if row is None:
                raise LookupError(f"questionnaire version {version_id} does not exist")
            if version_id in self._questionnaires:  # parsed by another update while this one read
                return self._questionnaires[version_id]
            if len(self._questionnaires) >= QUESTIONNAIRE_CACHE:
                del self._questionnaires[next(iter(self._questionnaires))]
            cached = self._questionnaires[version_id] = parse_survey(row.source, f"version {version_id}")
        return cached

    async def link_secret(self, turn: Turn) -> bytes:
        if self._link_secret is None:
            value = await repo.get_or_create_setting(
                turn.session, LINK_SECRET_SETTING, lambda: secrets.token_hex(32)
            )
            self._link_secret = bytes.fromhex(value)
        return self._link_secret
