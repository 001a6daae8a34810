"""Transaction benchmark: the CPU one update's database work costs the bot, through SQLAlchemy and through
the bare driver (asyncpg), on PostgreSQL.

Every variant is a transaction per update, with as many updates in flight as the bot handles at once:

    driver   asyncpg alone: BEGIN, SELECT 1, COMMIT (the floor for three round trips)
    core     the same through SQLAlchemy Core (engine.begin())
    session  the same through the ORM session the engine uses (Database.transaction())
    claim    the engine's first statement: claim the update, lock and read the sender and their questionnaire
    answer   claim, then save an answer with the step it moves to: an update answering a question
    direct   the same as answer, as the engine runs it: on the driver (storage.direct)

    python benchmarks/transaction.py                   # every variant, one after the other, twice
    python benchmarks/transaction.py --variants driver,answer --repeat 3 --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import uvloop
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load import database  # noqa: E402  (benchmarks/load.py: MINYI_BENCH_POSTGRES_URL's server)

from minyi.loadrun import Seeded, seed  # noqa: E402
from storage import direct  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.models import Channel  # noqa: E402

VARIANTS = ("driver", "core", "session", "claim", "answer", "direct")
IN_FLIGHT = 40  # updates the bot handles at once (bot.transports.base.WEBHOOK_CONNECTIONS)
FIRST_TELEGRAM_ID = 700_001

Update = Callable[[int, int], Awaitable[None]]
# One sequence for every variant and repeat: an update id once claimed is never claimed again.
UPDATE_IDS = itertools.count(1)


async def residents_in_progress(db: Database, seeded: Seeded, count: int) -> None:
    """`count` residents, each with a questionnaire in progress, as the engine finds them."""
    for index in range(count):
        async with db.transaction() as session:
            person = await repo.ensure_person(session, FIRST_TELEGRAM_ID + index)
            submission = await repo.create_submission(
                session,
                project_id=seeded.project_id,
                version_id=seeded.version_id,
                grid_id=seeded.grid_ids[0],
                person_id=person.id,
                channel=Channel.TELEGRAM,
            )
            person.active_submission_id = submission.id


def updates(variant: str, db: Database, pool: asyncpg.Pool) -> Update:
    """One update's database work for `variant`, given the resident's Telegram id and the step number."""
    select_one = text("SELECT 1")

    async def driver(_telegram_id: int, _step: int) -> None:
        async with pool.acquire() as connection, connection.transaction():
            await connection.fetchval("SELECT 1")

    async def core(_telegram_id: int, _step: int) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(select_one)

    async def session(_telegram_id: int, _step: int) -> None:
        async with db.transaction() as orm:
            await orm.execute(select_one)

    async def claim(telegram_id: int, step: int) -> None:
        async with db.transaction() as orm:
            claimed, _person, submission = await repo.claim_update_and_sender(
                orm, next(UPDATE_IDS), telegram_id
            )
            assert claimed and submission is not None
            if variant == "answer":
                moves_to = repo.Step(f"q{step + 1}", {}, False)
                await repo.save_answer(orm, submission, f"q{step}", "同意", step=moves_to)

    async def on_the_driver(telegram_id: int, step: int) -> None:
        async with direct.transaction(db) as transaction:
            update_id = next(UPDATE_IDS)
            claimed, _person, submission = await transaction.claim_update_and_sender(update_id, telegram_id)
            assert claimed and submission is not None
            moves_to = repo.Step(f"q{step + 1}", {}, False)
            await transaction.save_answer(
                submission, f"q{step}", "同意", raw_text="", update_id=None, step=moves_to
            )
            await transaction.write_changes()

    variants = {"driver": driver, "core": core, "session": session, "claim": claim, "answer": claim}
    return {**variants, "direct": on_the_driver}[variant]


async def measure(update: Update, residents: int, steps: int) -> tuple[float, float]:
    """CPU microseconds of this process per update, and updates per second."""

    async def resident(index: int) -> None:
        for step in range(steps):
            await update(FIRST_TELEGRAM_ID + index, step)

    await asyncio.gather(*(resident(i) for i in range(IN_FLIGHT)))  # warm up: connections, statements
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(resident(i) for i in range(residents)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = residents * steps
    return 1e6 * cpu / count, count / wall


async def run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {
        v: {"cpu_us_per_update": [], "updates_per_s": []} for v in args.variants
    }
    async with database("postgres", ROOT) as url:  # a database of its own, dropped afterwards
        seeded = await seed(url)
        db = Database(url, pool_size=IN_FLIGHT, max_overflow=0, pre_ping=False)  # as `minyi run` opens it
        pool = await asyncpg.create_pool(url.replace("+asyncpg", ""), min_size=1, max_size=IN_FLIGHT)
        try:
            await residents_in_progress(db, seeded, args.residents)
            # Variants alternate, so a machine whose speed drifts weighs on all of them alike.
            for _ in range(args.repeat):
                for variant in args.variants:
                    cpu, rate = await measure(updates(variant, db, pool), args.residents, args.steps)
                    results[variant]["cpu_us_per_update"].append(round(cpu))
                    results[variant]["updates_per_s"].append(round(rate))
        finally:
            await pool.close()
            await db.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="updates per resident")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    results = uvloop.run(run(args))  # the bot's event loop (minyi.commands.common.run)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'variant':8}  {'CPU µs per update (median)':>27}  {'updates/s':>10}   runs")
    for variant, found in results.items():
        cpu, rate = found["cpu_us_per_update"], found["updates_per_s"]
        print(f"{variant:8}  {statistics.median(cpu):>27.0f}  {statistics.median(rate):>10.0f}   {cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
