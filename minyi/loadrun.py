"""Load runs: simulated residents answer through the Bot API simulator, then the database is audited."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import callbacks as cb
from bot import simusers, texts
from bot.autopilot import answer_step
from bot.fakeapi import FakeTelegram
from bot.links import LinkTarget, make_payload
from bot.publishing import publish
from bot.questionnaire import Question, QuestionKind, Questionnaire
from bot.simusers import BotMessage, Click, SimUser
from bot.survey_file import parse_survey
from storage import repository as repo
from storage.database import Database
from storage.migrate import upgrade
from storage.models import Answer, Person, ProcessedUpdate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "road-widening.yaml"
SECRET = b"minyi-load-link-key"
PROJECT_CODE = "RW2026"
GRIDS = ("G01", "G02", "G03", "G04")
STARTUP_TIMEOUT = 180.0  # a busy machine: imports, jieba and the risk model


# --- the project the residents answer -----------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """The example project as published in the database under test."""

    project_id: int
    version_id: int
    grid_ids: tuple[int, ...]
    questionnaire: Questionnaire

    def start(self, index: int) -> str:
        grid = self.grid_ids[index % len(self.grid_ids)]
        return "/start " + make_payload(SECRET, LinkTarget(self.project_id, grid))


async def seed(database_url: str, *, migrate: bool = True) -> Seeded:
    if migrate:
        await upgrade(database_url)
    source = EXAMPLE.read_text(encoding="utf-8")
    questionnaire = parse_survey(source, str(EXAMPLE))
    async with Database(database_url) as db, db.transaction() as session:
        project = await repo.create_project(session, PROJECT_CODE, questionnaire.title)
        version, _ = await publish(session, project, questionnaire, source)
        grids = [await repo.upsert_grid(session, project.id, code, f"网格{code}") for code in GRIDS]
        return Seeded(project.id, version.id, tuple(g.id for g in grids), questionnaire)


# --- the simulator, recording who sent which update ---------------------------------------------------


class RecordingTelegram(FakeTelegram):
    """The simulator, remembering every update id each resident sent (for the audit) and able to
    send a share of updates a second time, as Telegram does after a lost acknowledgement."""

    def __init__(self, *args: Any, redeliver: float = 0.0, seed: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: dict[int, list[int]] = {}
        self.redelivered = 0
        self._redeliver = redeliver
        self._rng = random.Random(seed)

    async def push_update(self, update: dict[str, Any]) -> int:
        update_id = await super().push_update(update)
        body = update.get("message") or update.get("callback_query") or {}
        sender = int(body.get("from", {}).get("id", 0))
        self.sent.setdefault(sender, []).append(update_id)
        if self._redeliver and self._rng.random() < self._redeliver:
            self.redelivered += 1
            await self.redeliver(update_id)  # the bot gets it twice in a row
        return update_id

    @property
    def pending_failures(self) -> int:
        """Injected failures (fail_next) not yet used up by a call."""
        return len(self._fail_rules)

    def forget_calls(self) -> None:
        """Drop the call log: a long run would otherwise keep every call in memory."""
        self.calls.clear()
        self.webhook_attempts.clear()


# --- pacing ---------------------------------------------------------------------------------------------


class Pacer:
    """Spaces all residents' updates to a steady rate; with no rate, every resident goes flat out."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


# --- residents ------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """What one resident did and saw: update latencies and the answers the bot acknowledged."""

    user_id: int
    latencies: list[float] = field(default_factory=list)
    # question id -> update id of the answer the bot moved on from (the last one, if answered again)
    accepted: dict[str, int] = field(default_factory=dict)
    accepted_steps: int = 0
    # Answers sent just before the bot went silent: applied or not, the resident could not tell, and
    # sent the link again to see. The database may hold any of them (or a later, acknowledged one).
    uncertain: dict[str, set[int]] = field(default_factory=dict)
    recoveries: int = 0
    finished: bool = False
    receipt: str = ""


def _step_of(message: BotMessage, questionnaire: Questionnaire) -> str:
    """Where the dialog stands according to a bot message: a question id, "summary", "done" or ""."""
    text = message.text
    if texts.SUBMITTED.split("\n", 1)[0] in text or texts.ALREADY_SUBMITTED.split("，", 1)[0] in text:
        return "done"
    if any(data.startswith(cb.SUMMARY + cb.SEPARATOR) for row in message.buttons for _, data in row):
        return "summary"
    best, length = "", 0
    for question in questionnaire.questions:
        for heading in (question.text, question.consent or ""):
            if heading and heading in text and len(heading) > length:
                best, length = question.id, len(heading)
    return best


class Resident(SimUser):
    """A simulated phone that times each step and, when the bot stays silent (it was killed between its
    commit and its reply), sends its start link again to see where it stands, as a person would."""

    def __init__(
        self,
        fake: RecordingTelegram,
        user_id: int,
        *,
        start: str,
        questionnaire: Questionnaire,
        pacer: Pacer,
        step_timeout: float,
    ) -> None:
        super().__init__(fake, user_id, first_name=f"居民{user_id}")
        self.recorder = fake
        self.start = start
        self.questionnaire = questionnaire
        self.pacer = pacer
        self.step_timeout = step_timeout
        self.trace = Trace(user_id)

    def _question(self, question_id: str) -> Question | None:
        return self.questionnaire.question(question_id)

    async def send(self, text: str, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        answering = self._typed_answer_to(self.log.history[-1]) if self.log.history else None
        return await self._step(
            lambda: SimUser.send(self, text, expect=expect, timeout=self.step_timeout), answering
        )

    async def click(
        self,
        button: str | None = None,
        *,
        data: str | None = None,
        message: BotMessage | None = None,
        expect: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Click:
        answering = _answered_by(data or "")

        async def tap() -> list[BotMessage]:
            clicked = await SimUser.click(
                self, button, data=data, message=message, expect=expect, timeout=self.step_timeout
            )
            return clicked.messages

        messages = await self._step(tap, answering)
        return Click("", False, messages)

    def _typed_answer_to(self, message: BotMessage) -> str | None:
        question = self._question(_step_of(message, self.questionnaire))
        if question is None or question.kind not in (
            QuestionKind.TEXT,
            QuestionKind.NUMBER,
            QuestionKind.PHONE,
        ):
            return None
        return question.id

    async def _step(self, act: Any, answering: str | None = None) -> list[BotMessage]:
        await self.pacer.wait()
        sent_before = len(self.recorder.sent.get(self.user_id, ()))
        started = time.monotonic()
        recovered = False
        try:
            messages: list[BotMessage] = await act()
        except AssertionError:
            messages = await self._recover()
            recovered = True
        else:
            self.trace.latencies.append(time.monotonic() - started)
        update_id = self.recorder.sent[self.user_id][sent_before]
        shown = _step_of(messages[-1], self.questionnaire) if messages else ""
        if answering is not None and recovered:
            self.trace.uncertain.setdefault(answering, set()).add(update_id)
        elif answering is not None and shown and shown != answering:
            self.trace.accepted[answering] = update_id
            self.trace.accepted_steps += 1
        return messages

    async def _recover(self) -> list[BotMessage]:
        for _ in range(10):
            self.trace.recoveries += 1
            with contextlib.suppress(AssertionError):
                return await SimUser.send(self, self.start, timeout=self.step_timeout)
        raise AssertionError(f"resident {self.user_id}: the bot did not answer ten times in a row")


def _answered_by(data: str) -> str | None:
    """The question a tap answers, if it stores an answer (a tick or a phone consent does not)."""
    tap = cb.decode(data)
    if tap is None:
        return None
    if tap.action in (cb.ANSWER, cb.DONE, cb.SKIP):
        return tap.part(1)
    if tap.action == cb.PHONE and tap.part(2) == "no":
        return tap.part(1)
    return None


async def complete_survey(resident: Resident, rng: random.Random, *, max_steps: int = 80) -> Trace:
    """Answer the questionnaire from the start link to the receipt, as fast as the pacer allows."""
    trace = resident.trace
    message = (await resident.send(resident.start))[-1]
    for _ in range(max_steps):
        if _step_of(message, resident.questionnaire) == "done":
            trace.finished = True
            if "回执号：" in message.text:
                trace.receipt = message.text.split("回执号：", 1)[1].split("\n", 1)[0].strip()
            return trace
        message = await answer_step(resident, rng, message)
    return trace


def quiet_listening() -> None:
    """The residents do not listen for stray extra replies after a tap that expects none: under load
    that pause would be counted as latency. The audit finds duplicates in the database instead."""
    simusers.QUIET_SECONDS = 0.0


async def run_residents(
    fake: RecordingTelegram,
    seeded: Seeded,
    count: int,
    *,
    rate: float | None = None,
    step_timeout: float = 120.0,
    seed: int = 2026,
    first_user_id: int = 100_001,
) -> list[Trace]:
    quiet_listening()
    pacer = Pacer(rate)
    rng = random.Random(seed)
    residents = [
        Resident(
            fake,
            first_user_id + i,
            start=seeded.start(i),
            questionnaire=seeded.questionnaire,
            pacer=pacer,
            step_timeout=step_timeout,
        )
        for i in range(count)
    ]
    return list(await asyncio.gather(*(complete_survey(r, random.Random(rng.random())) for r in residents)))


# --- the audit ------------------------------------------------------------------------------------------


@dataclass
class Audit:
    """Checked against the database: every count must be 0."""

    lost: int = 0  # answers the bot acknowledged that the database lacks, and updates never handled
    duplicated: int = 0  # answers counted twice, second submissions, one update stored twice
    out_of_order: int = 0  # answers whose order in the database differs from the order they were sent
    unfinished: int = 0  # residents who did not reach their receipt
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.unfinished)


async def audit(database_url: str, fake: RecordingTelegram, traces: Sequence[Trace]) -> Audit:
    result = Audit()
    async with Database(database_url) as db, db.reading() as session:
        handled = set((await session.scalars(select(ProcessedUpdate.update_id))).all())
        for trace in traces:
            unhandled = [u for u in fake.sent.get(trace.user_id, []) if u not in handled]
            if unhandled:
                result.lost += len(unhandled)
                result.problems.append(f"resident {trace.user_id}: updates never handled {unhandled}")
            if not trace.finished:
                result.unfinished += 1
                result.problems.append(f"resident {trace.user_id}: did not finish")
            person = (
                await session.scalars(select(Person).where(Person.telegram_id == trace.user_id))
            ).first()
            submissions = (
                list(await repo.submissions_of_person(session, person.id)) if person is not None else []
            )
            if len(submissions) > 1:
                result.duplicated += len(submissions) - 1
                result.problems.append(f"resident {trace.user_id}: {len(submissions)} submissions")
            stored: list[Answer] = []
            counted = 0
            for submission in submissions:
                stored.extend(
                    (
                        await session.scalars(
                            select(Answer).where(Answer.submission_id == submission.id).order_by(Answer.seq)
                        )
                    ).all()
                )
                counted += submission.answer_count
                if trace.finished and trace.receipt and submission.receipt != trace.receipt:
                    result.problems.append(f"resident {trace.user_id}: receipt differs")
            _compare(result, trace, stored, counted)
    return result


def _compare(result: Audit, trace: Trace, stored: Sequence[Answer], counted: int) -> None:
    by_code = {a.question_code: a for a in stored}
    for code in trace.accepted.keys() | trace.uncertain.keys():
        allowed = set(trace.uncertain.get(code, ()))
        if code in trace.accepted:
            allowed.add(trace.accepted[code])
        row = by_code.get(code)
        if row is None or row.update_id not in allowed:
            result.lost += 1
            found = None if row is None else row.update_id
            result.problems.append(
                f"resident {trace.user_id}: {code} from update {allowed} stored as {found}"
            )
    possible = trace.accepted_steps + sum(len(ids) for ids in trace.uncertain.values())
    if counted > possible:
        result.duplicated += counted - possible
        result.problems.append(
            f"resident {trace.user_id}: {counted} answers counted, {trace.accepted_steps} acknowledged"
        )
    update_ids = [a.update_id for a in stored]
    if len(set(update_ids)) != len(update_ids):
        result.duplicated += len(update_ids) - len(set(update_ids))
    seqs = [a.seq for a in stored]
    ordered = [a.update_id or 0 for a in stored]
    disorder = sum(1 for a, b in itertools.pairwise(ordered) if b <= a)
    disorder += len(seqs) - len(set(seqs))
    if disorder:
        result.out_of_order += disorder
        result.problems.append(
            f"resident {trace.user_id}: answers out of order {list(zip(seqs, ordered, strict=True))}"
        )


# --- the bot under test, in a process of its own ---------------------------------------------------------


class BotProcess:
    """`minyi run` (or any bot command) as a child process in a group of its own, so that a SIGKILL
    reaches every worker it started."""

    def __init__(
        self,
        fake: FakeTelegram,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        webhook: bool = False,
    ) -> None:
        self.fake = fake
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.webhook = webhook
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_path: Path | None = None

    @classmethod
    def minyi(
        cls,
        fake: FakeTelegram,
        database_url: str,
        transport: str,
        *,
        webhook: bool = False,
        workers: int = 1,
        port: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> BotProcess:
        argv = [sys.executable, "-m", "minyi.cli", "run", "--transport", transport]
        if webhook:
            argv += ["--webhook", "--workers", str(workers)]
        env = {
            "MINYI_DATABASE_URL": database_url,
            "MINYI_BOT_TOKEN": fake.token,
            "MINYI_TELEGRAM_API_URL": fake.url,
            "MINYI_SECRET_KEY": SECRET.hex(),
            "MINYI_WEBHOOK_PORT": str(port or free_port()),
            "MINYI_WEBHOOK_SECRET": "load-run-secret",
            **(extra_env or {}),
        }
        return cls(fake, argv, env, webhook=webhook)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, stderr: Path | None = None) -> None:
        method = "setWebhook" if self.webhook else "deleteWebhook"
        before = len(self.fake.calls_of(method))
        polls = self.fake.polls_started  # arrivals: a long poll is recorded in `calls` only once answered
        self.stderr_path = stderr
        with open(stderr or os.devnull, "ab") as error_file:  # the child keeps its own copy
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=error_file,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT

        async def wait(reached: Callable[[], bool]) -> None:
            while not reached():
                if self.process is None or self.process.returncode is not None or time.monotonic() > deadline:
                    await self.kill()  # never leave a half-started bot behind
                    raise RuntimeError(f"the bot did not start: {self.tail()}")
                await asyncio.sleep(0.05)

        await wait(lambda: len(self.fake.calls_of(method)) > before)
        if not self.webhook:
            await wait(lambda: self.fake.polls_started > polls)

    def tail(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return "(no log)"
        return self.stderr_path.read_text(errors="replace")[-2000:]

    async def kill(self) -> None:
        """SIGKILL the whole group: no shutdown, no goodbye, exactly like a crash."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def stop(self, seconds: float = 20.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(seconds):
                await self.process.wait()
        except TimeoutError:
            await self.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
