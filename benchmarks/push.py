"""Push benchmark: a campaign at Telegram's real pace through the Bot API simulator, with urgent alerts
raised while it runs.

Reports the achieved rate against the configured limit (and the busiest second as Telegram would count
it), whether anyone got the invitation twice or not at all, and the time from an alert being queued to
its message reaching the grid worker (p50, p99).

    python benchmarks/push.py --transport aiogram --residents 1500
    python benchmarks/push.py --transport ptb --db postgres --residents 5000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.dispatch import Dispatch  # noqa: E402
from bot.engine import DialogEngine  # noqa: E402
from bot.fakeapi import FakeTelegram  # noqa: E402
from bot.publishing import publish  # noqa: E402
from bot.push import PushSettings, QuietHours  # noqa: E402
from bot.survey_file import parse_survey  # noqa: E402
from minyi.settings import Settings  # noqa: E402
from minyi.wiring import make_transport  # noqa: E402
from storage import outreach  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import (  # noqa: E402
    Alert,
    Campaign,
    CampaignStatus,
    Channel,
    GridWorker,
    Person,
    Role,
    Submission,
    utcnow,
)

POSTGRES_ADMIN_URL = os.environ.get(
    "MINYI_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SURVEY = ROOT / "examples" / "road-widening.yaml"
FIRST_RESIDENT = 1_000_000
WORKER, ASSESSOR = 900_001, 900_002


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'push.db'}"
            await upgrade(url)
            yield url
        return
    name = f"minyi_push_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        await upgrade(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def seed(db: Database, fake: FakeTelegram, residents: int) -> tuple[int, int]:
    """A project with one grid, its worker, an assessor on duty, and residents who scanned and consented."""
    source = SURVEY.read_text(encoding="utf-8")
    questionnaire = parse_survey(source)
    chats = range(FIRST_RESIDENT, FIRST_RESIDENT + residents)
    for chat in [*chats, WORKER, ASSESSOR]:
        fake.user(chat)
    now = utcnow()
    async with db.transaction() as session:
        project = await repo.create_project(session, "RW2026", questionnaire.title)
        version, _ = await publish(session, project, questionnaire, source)
        grid = await repo.upsert_grid(session, project.id, "G01", "东风社区一网格", "东风社区", residents)
        worker = Person(telegram_id=WORKER, role=Role.GRIDWORKER, display_name="王网格", state="")
        session.add_all([worker, Person(telegram_id=ASSESSOR, role=Role.ASSESSOR, state="", on_duty=True)])
        await session.flush()
        session.add(GridWorker(grid_id=grid.id, person_id=worker.id))
        await session.execute(
            insert(Person),
            [{"telegram_id": c, "role": "resident", "display_name": "", "state": ""} for c in chats],
        )
        ids = dict((await session.execute(select(Person.telegram_id, Person.id))).all())
        await session.execute(
            insert(Submission),
            [
                {
                    "receipt": f"MY-{c}",
                    "project_id": project.id,
                    "questionnaire_version_id": version.id,
                    "grid_id": grid.id,
                    "person_id": ids[c],
                    "channel": Channel.TELEGRAM,
                    "status": "in_progress",
                    "current_step": "relation",
                    "draft": {},
                    "consent_at": now,
                }
                for c in chats
            ],
        )
    return project.id, grid.id


def busiest_second(times: list[float]) -> int:
    ordered = sorted(times)
    most = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with database(args.db) as url, FakeTelegram() as fake, Database(url) as db:
        project_id, grid_id = await seed(db, fake, args.residents)
        settings = Settings(database_url=url, bot_token=fake.token, telegram_api_url=fake.url)
        push = PushSettings(rate=args.rate, quiet=QuietHours.parse("off", "Asia/Shanghai"), remind_after=None)
        engine = DialogEngine(db, bot_username=fake.bot_username, push=push)
        transport = make_transport(args.transport, engine, settings)
        polling = asyncio.create_task(transport.run_polling())
        dispatch = Dispatch(db, transport, push)
        sending = asyncio.create_task(dispatch.run())
        started = time.monotonic()
        async with db.transaction() as session:
            campaign = await outreach.create_campaign(
                session, project_id=project_id, grid_ids=[grid_id], only_unanswered=False, created_by="bench"
            )
        raised: dict[str, float] = {}
        while True:
            await asyncio.sleep(args.alert_every)
            async with db.reading() as session:
                row = await session.get(Campaign, campaign.id)
            if row is None or row.status != CampaignStatus.RUNNING:
                break
            words = f"第{len(raised) + 1}号：明天大家一起去堵路"
            async with db.transaction() as session:
                await session.execute(
                    insert(Alert).values(
                        project_id=project_id, grid_id=grid_id, signals=["blocking"], redacted=words
                    )
                )
            raised[words] = time.monotonic()
        finished = time.monotonic()
        await asyncio.sleep(2 * push.poll_seconds + 1)  # the last alerts
        arrived: dict[str, float] = {}
        for call in fake.calls_of("sendMessage"):
            if call.params.get("chat_id") == WORKER and call.status == 200:
                for words in raised:
                    if words in str(call.params.get("text", "")):
                        arrived.setdefault(words, call.time)
        dispatch.stop()
        await sending
        await transport.stop()
        await polling
        await transport.close()

    invitations = [
        c for c in fake.calls_of("sendMessage") if c.status == 200 and c.params["chat_id"] >= FIRST_RESIDENT
    ]
    per_chat = Counter(c.params["chat_id"] for c in invitations)
    every_call = [c.time for c in fake.calls if c.method in ("sendMessage", "editMessageText")]
    first, last = min(c.time for c in invitations), max(c.time for c in invitations)
    latencies = [arrived[w] - raised[w] for w in raised if w in arrived]
    return {
        "transport": args.transport,
        "database": args.db,
        "residents": args.residents,
        "rate_limit": args.rate,
        "achieved_rate": round((len(invitations) - 1) / (last - first), 2) if last > first else None,
        "busiest_second_calls": busiest_second(every_call),
        "campaign_seconds": round(finished - started, 1),
        "residents_reached_once": sum(1 for n in per_chat.values() if n == 1),
        "residents_reached_twice_or_more": sum(1 for n in per_chat.values() if n > 1),
        "residents_missed": args.residents - len(per_chat),
        "alerts": len(raised),
        "alerts_delivered": len(latencies),
        "time_to_alert_p50_s": round(percentile(latencies, 0.5), 3),
        "time_to_alert_p99_s": round(percentile(latencies, 0.99), 3),
        "time_to_alert_max_s": round(max(latencies), 3) if latencies else None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("aiogram", "ptb"), default="aiogram")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--residents", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=25.0, help="the configured limit, messages/s")
    parser.add_argument("--alert-every", type=float, default=2.0, help="seconds between urgent alerts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")
    return 0 if report["residents_missed"] == 0 and report["residents_reached_twice_or_more"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
