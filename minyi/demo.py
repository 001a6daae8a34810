"""`minyi demo`: the whole path offline — simulator, bot and simulated residents — then real numbers."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from bot.autopilot import Outcome, answer_survey
from bot.fakeapi import FakeTelegram
from bot.links import LinkTarget, make_payload
from bot.publishing import publish
from bot.survey_file import parse_survey
from minyi.processes import start_bot_process
from minyi.settings import Settings
from minyi.wiring import open_database
from nlp.taxonomy import get as risk_code
from storage import repository as repo
from storage.migrate import upgrade
from storage.models import Alert, AnswerTag

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "road-widening.yaml"
PROJECT_CODE = "RW2026"
GRIDS = (
    ("G01", "东风社区一网格", "东风社区", 120),
    ("G02", "人民社区二网格", "人民社区", 95),
    ("G03", "滨江社区三网格", "滨江社区", 110),
    ("G04", "新华村网格", "新华村", 60),
)
SECRET = b"minyi-demo-link-key"


@dataclass
class DemoResult:
    database_url: str
    database_path: Path
    outcomes: list[Outcome] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    answers: int = 0
    grievances: int = 0
    classified: int = 0
    urgent: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    startup_seconds: float = 0.0


async def run_demo(
    folder: Path, *, residents: int = 50, transport: str = "aiogram", seed: int = 2026
) -> DemoResult:
    started = time.monotonic()
    # Absolute, because the bot runs in a process of its own with a working directory of its own.
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.db"
    for leftover in (path, path.with_suffix(".db-wal"), path.with_suffix(".db-shm")):
        leftover.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    source = EXAMPLE.read_text(encoding="utf-8")
    questionnaire = parse_survey(source, str(EXAMPLE))
    result = DemoResult(url, path)
    async with FakeTelegram(bot_username="minyi_demo_bot") as fake:
        settings = Settings(
            database_url=url,
            bot_token=fake.token,
            telegram_api_url=fake.url,
            bot_username="minyi_demo_bot",
            secret_key=SECRET.hex(),
        )
        db = open_database(settings)
        async with db.transaction() as session:
            project = await repo.create_project(session, PROJECT_CODE, questionnaire.title)
            await publish(session, project, questionnaire, source)
            grids = [await repo.upsert_grid(session, project.id, *g) for g in GRIDS]
        # The bot runs in a process of its own, as in a deployment: it gets a core to itself, and it
        # loads the risk model before it takes updates.
        with open(folder / "demo-bot.log", "wb") as log:
            bot = await start_bot_process(fake, settings, transport, log=log)
        result.startup_seconds = time.monotonic() - started
        try:
            rng = random.Random(seed)
            jobs = []
            for i in range(residents):
                grid = grids[i % len(grids)]
                user = fake.user(first_name=f"居民{i + 1}")
                if i % 10 == 9:  # some clients drop the link's payload: the resident types the code
                    start = f"{PROJECT_CODE}-{grid.code}"
                else:
                    start = "/start " + make_payload(SECRET, LinkTarget(project.id, grid.id))
                jobs.append(
                    answer_survey(
                        user,
                        start,
                        random.Random(rng.random()),
                        decline=i % 17 == 5,
                        abandon_after=rng.randint(4, 10) if i % 7 == 3 else None,
                        misbehave=i % 6 == 1,
                        think=0.2,
                    )
                )
            result.outcomes = list(await asyncio.gather(*jobs))
        finally:
            await bot.stop()  # it finishes classifying what was answered before it exits
        async with db.reading() as session:
            tags = (await session.scalars(select(AnswerTag))).all()
            result.grievances = len(tags)
            result.classified = sum(1 for t in tags if t.tagged_at is not None)
            result.urgent = len((await session.scalars(select(Alert))).all())
            for tag in tags:
                for code in tag.categories or []:
                    result.categories[code] = result.categories.get(code, 0) + 1
            result.counts = await repo.count_by_status(session, project.id)
            result.answers = sum(len(r.answers) for r in await repo.submission_rows(session, project.id))
        await db.dispose()
    result.seconds = time.monotonic() - started
    return result


def report(result: DemoResult) -> str:
    by_status: dict[str, int] = {}
    for (_grid, status), n in result.counts.items():
        by_status[status] = by_status.get(status, 0) + n
    declined = sum(1 for o in result.outcomes if o.result == "declined")
    misbehaved = sum(o.misbehaved for o in result.outcomes)
    lines = [
        f"The bot started in {result.startup_seconds:.1f} s; then {len(result.outcomes)} simulated residents "
        f"talked to it for {result.seconds - result.startup_seconds:.1f} s "
        f"({misbehaved} stickers, stale taps, stray texts and /back along the way).",
        "",
        "From the database:",
        f"  submitted    {by_status.get('submitted', 0):>4}",
        f"  in progress  {by_status.get('in_progress', 0):>4}",
        f"  declined     {declined:>4}   (nothing personal kept)",
        f"  answers      {result.answers:>4}",
        f"  grievances   {result.grievances:>4}   ({result.classified} classified by the model)",
        f"  urgent       {result.urgent:>4}   (alerts queued for the grid workers)",
        "",
        "  grid   submitted  in progress",
    ]
    for code, *_ in GRIDS:
        submitted = result.counts.get((code, "submitted"), 0)
        progress = result.counts.get((code, "in_progress"), 0)
        lines.append(f"  {code}    {submitted:>9}  {progress:>11}")
    if result.categories:
        lines += ["", "  risk categories the model suggests (a person confirms each):"]
        for code, n in sorted(result.categories.items(), key=lambda item: -item[1])[:6]:
            lines.append(f"    {risk_code(code).name:<12} {n:>3}")
    lines += [
        "",
        f"The data is in {result.database_path}. To look at it:",
        f"  MINYI_DATABASE_URL={result.database_url} \\",
        f"    minyi export responses --project {PROJECT_CODE} --format csv",
        f"  sqlite3 {result.database_path} 'select receipt, status, channel from submissions'",
    ]
    return "\n".join(lines)
