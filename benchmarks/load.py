"""Load benchmark: simulated residents answer the example questionnaire through the Bot API simulator.

The bot runs in a process of its own (its CPU and memory are measured alone); the simulator and the
residents run here. In the same run a bare echo bot on the same framework sets the reference rate.
Lost, duplicated and out-of-order answers are counted against the database afterwards.

    python benchmarks/load.py --transport aiogram --db sqlite --residents 1000
    python benchmarks/load.py --transport ptb --db postgres --rate 200 --json
    python benchmarks/load.py --db postgres --webhook --workers 1,2,4 --skip-bare
    python benchmarks/load.py --db postgres --kill --restart-postgres --api-faults --redeliver 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from minyi.loadrun import (
    ROOT,
    Audit,
    BotProcess,
    Pacer,
    RecordingTelegram,
    Seeded,
    Trace,
    audit,
    free_port,
    quiet_listening,
    run_residents,
    seed,
)

POSTGRES_ADMIN_URL = os.environ.get(
    "MINYI_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
RSS_EVERY = 30.0  # seconds between the points of the memory timeline
BARE_STEPS = 20  # about what one questionnaire takes: a start, a consent, ~17 answers and the submit


@dataclass
class Usage:
    """CPU and memory of the bot's processes (every worker, across restarts), sampled twice a second."""

    cpu_seconds: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0
    # (seconds into the load, MB) every RSS_EVERY seconds: flat after warming up, or growing?
    timeline: list[tuple[float, float]] = field(default_factory=list)
    _last: dict[int, float] = field(default_factory=dict)

    def sample(self, root_pid: int, *, count: bool = True) -> float:
        """Add the CPU time used since the last sample; `count=False` only sets the baseline, so the
        CPU a process spent starting up (imports, loading the risk model) is not charged to the load."""
        rss = 0
        try:
            root = psutil.Process(root_pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total = times.user + times.system
                if count:
                    self.cpu_seconds += total - self._last.get(proc.pid, 0.0)
                self._last[proc.pid] = total
                rss += proc.memory_info().rss
        mb = rss / 2**20
        self.peak_rss_mb = max(self.peak_rss_mb, mb)
        self.rss_end_mb = mb
        return mb


@dataclass
class Phase:
    """One measured load: what the residents saw, what the bot used and what the database holds."""

    label: str
    updates: int
    seconds: float
    latencies: list[float]
    questionnaires: int = 0
    usage: Usage = field(default_factory=Usage)
    bench_cpu_seconds: float = 0.0
    audit: Audit | None = None

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "updates": self.updates,
            "seconds": round(self.seconds, 2),
            "updates_per_s": round(self.rate, 1),
            "questionnaires_per_s": round(self.questionnaires / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(0.50), 1),
            "p95_ms": round(self.percentile(0.95), 1),
            "p99_ms": round(self.percentile(0.99), 1),
            "bot_cpu_percent": round(100 * self.usage.cpu_seconds / self.seconds, 1) if self.seconds else 0.0,
            # CPU time per update: unlike updates/s, it hardly depends on what else the machine runs.
            "bot_cpu_ms_per_update": round(1000 * self.usage.cpu_seconds / self.updates, 2)
            if self.updates
            else 0.0,
            "bench_cpu_percent": round(100 * self.bench_cpu_seconds / self.seconds, 1)
            if self.seconds
            else 0.0,
            "rss_start_mb": round(self.usage.rss_start_mb, 1),
            "rss_end_mb": round(self.usage.rss_end_mb, 1),
            "peak_rss_mb": round(self.usage.peak_rss_mb, 1),
            "rss_timeline": self.usage.timeline,
        }
        if self.audit is not None:
            result.update(
                lost=self.audit.lost,
                duplicated=self.audit.duplicated,
                out_of_order=self.audit.out_of_order,
                unfinished=self.audit.unfinished,
            )
        return result


# --- databases ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, empty database for one run: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        return
    name = f"minyi_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()  # a PostgreSQL restart during the run would leave its connection dead
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --- faults -------------------------------------------------------------------------------------------


async def restart_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql"))
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"
    )
    await process.wait()


async def lock_sqlite(url: str, seconds: float) -> None:
    """Another process takes SQLite's write lock and keeps it for `seconds` (a backup, a stray script)."""
    path = url.split("///", 1)[1]
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO settings(key, value) VALUES ('load-lock', 'x')\")\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('ROLLBACK')\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, path, str(seconds))
    await process.wait()


async def api_faults(fake: RecordingTelegram, stop: asyncio.Event, slow_at: float) -> None:
    """A steady trickle of 429s and 5xx answers, and once half a second of replies slower than a client
    waits (PTB gives up after 5 s and sends again)."""
    rng = random.Random(7)
    started = time.monotonic()
    slowed = False
    while not stop.is_set():
        method = rng.choice(("sendMessage", "sendMessage", "editMessageText", "answerCallbackQuery"))
        status = rng.choice((429, 500, 502, 503))
        # A trickle, not a wall: while the bot is down (--kill) unused failures would pile up and then
        # fail every call for a while, which is an outage, not flakiness.
        if fake.pending_failures < 3:
            fake.fail_next(method, status, retry_after=1 if status == 429 else None)
        if not slowed and time.monotonic() - started > slow_at:
            slowed = True
            fake.set_delay("sendMessage", 6.0)
            await asyncio.sleep(0.5)
            fake.set_delay("sendMessage", 0.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await stop.wait()


# --- one measured phase -------------------------------------------------------------------------------


async def measured(
    label: str,
    bot: BotProcess,
    log: Path,
    load: Callable[[], Awaitable[tuple[int, list[float], int]]],
    faults: list[Callable[[], Coroutine[Any, Any, None]]],
    profile: str | None = None,
    warm_up: Callable[[], Awaitable[object]] | None = None,
) -> Phase:
    await bot.start(log)
    if warm_up is not None:
        await warm_up()  # not measured: the first replies of a fresh process set up connections and caches
    spy = await profiler(bot, profile, label.replace(" ", "-"))
    usage = Usage()
    await asyncio.sleep(0.5)
    usage.rss_start_mb = usage.sample(bot.pid, count=False)
    done = asyncio.Event()

    async def sampler() -> None:
        while not done.is_set():
            mb = usage.sample(bot.pid)
            elapsed = time.monotonic() - started
            if not usage.timeline or elapsed - usage.timeline[-1][0] >= RSS_EVERY:
                usage.timeline.append((round(elapsed, 1), round(mb, 1)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await done.wait()

    me = psutil.Process()
    own_before = sum(me.cpu_times()[:2])
    started = time.monotonic()
    sampling = asyncio.create_task(sampler())
    injected = [asyncio.create_task(fault()) for fault in faults]
    try:
        with no_full_collections():
            updates, latencies, finished = await load()
    except BaseException:
        await bot.stop()  # never leave the bot running after a failed run
        raise
    finally:
        seconds = time.monotonic() - started
        done.set()
        await sampling
        for task in injected:
            task.cancel()
        await asyncio.gather(*injected, return_exceptions=True)
    usage.sample(bot.pid)
    phase = Phase(label, updates, seconds, latencies, finished, usage, sum(me.cpu_times()[:2]) - own_before)
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its samples and ends
        await spy.wait()
    await bot.stop()
    return phase


async def bare_resident(fake: RecordingTelegram, user_id: int, pacer: Pacer, latencies: list[float]) -> None:
    user = fake.user(user_id)
    message = None
    for step in range(BARE_STEPS):
        await pacer.wait()
        started = time.monotonic()
        if message is None or step % 6 == 0:
            message = (await user.send(f"你好 {step}", timeout=120))[-1]
        else:
            message = (
                await user.click(data=message.buttons[0][0][1], message=message, timeout=120)
            ).messages[-1]
        latencies.append(time.monotonic() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_listening()
    folder = Path(tempfile.mkdtemp(prefix="minyi-bench-"))
    results: dict[str, Any] = {
        "transport": args.transport,
        "db": args.db,
        "residents": args.residents,
        "rate": args.rate,
        "warm_up": args.warm_up,
        "rounds_run": args.rounds,
        "machine": machine(),
    }
    worker_counts = [int(w) for w in str(args.workers).split(",")]
    async with database(args.db, folder) as url, RecordingTelegram(redeliver=args.redeliver) as fake:
        seeded = await seed(url)
        rounds: list[Round] = []
        for number in range(args.rounds):
            bare = None if args.skip_bare else await bare_phase(args, fake, folder, number)
            phases = [
                await minyi_phase(
                    args,
                    fake,
                    seeded,
                    url,
                    folder,
                    workers,
                    first_user,
                    f"minyi-x{workers}-{number + 1}",
                    # a comparison of worker counts runs every phase on webhooks, one process too
                    webhook=args.webhook or workers > 1 or len(worker_counts) > 1,
                )
                for workers, first_user in zip(
                    worker_counts, first_users(number, len(worker_counts)), strict=True
                )
            ]
            rounds.append(Round(bare, phases))

        # Rounds alternate the bare bot and Minyi, so a machine that slows down or speeds up during the run
        # (a shared host) weighs on both alike; the round with the median ratio is the one reported.
        chosen = sorted(rounds, key=lambda r: r.ratio or 0.0)[(len(rounds) - 1) // 2]
        if chosen.bare is not None:
            results["bare"] = chosen.bare.summary()
        results.update(chosen.phases[0].summary())
        audits = [p.audit for r in rounds for p in r.phases if p.audit is not None]
        for key in ("lost", "duplicated", "out_of_order", "unfinished"):
            results[key] = sum(getattr(a, key) for a in audits)  # every round counts, not only the median
        results["workers"] = worker_counts[0]
        results["bare_updates_per_s"] = round(chosen.bare.rate, 1) if chosen.bare else None
        results["ratio"] = chosen.ratio
        results["redelivered"] = fake.redelivered
        if len(rounds) > 1:
            results["rounds"] = [r.summary() for r in rounds]
        if len(chosen.phases) > 1:
            results["scale"] = [
                {"workers": w, **p.summary()} for w, p in zip(worker_counts, chosen.phases, strict=True)
            ]
        results["log"] = str(folder)
    return results


@dataclass
class Round:
    """The bare bot once, then Minyi once per worker count."""

    bare: Phase | None
    phases: list[Phase]

    @property
    def ratio(self) -> float | None:
        if self.bare is None or not self.bare.rate:
            return None
        return round(self.phases[0].rate / self.bare.rate, 3)

    def summary(self) -> dict[str, Any]:
        main = self.phases[0].summary()
        bare = self.bare.summary() if self.bare else {}
        return {
            "bare_updates_per_s": bare.get("updates_per_s"),
            "updates_per_s": main["updates_per_s"],
            "ratio": self.ratio,
            "bare_bot_cpu_ms_per_update": bare.get("bot_cpu_ms_per_update"),
            "bot_cpu_ms_per_update": main["bot_cpu_ms_per_update"],
            "p99_ms": main["p99_ms"],
        }


def first_users(round_number: int, phases: int) -> list[int]:
    """The first resident's Telegram id of each Minyi phase: every phase has residents of its own
    (a resident who has submitted cannot start again), a million ids apart."""
    return [100_001 + (round_number * phases + index) * 1_000_000 for index in range(phases)]


async def bare_phase(args: argparse.Namespace, fake: RecordingTelegram, folder: Path, number: int) -> Phase:
    echo = BotProcess(
        fake,
        [sys.executable, str(ROOT / "benchmarks" / "echo_bot.py"), "--transport", args.transport],
        {"MINYI_BOT_TOKEN": fake.token, "MINYI_TELEGRAM_API_URL": fake.url},
    )

    async def bare_load(
        first: int = 900_001, residents: int = args.residents
    ) -> tuple[int, list[float], int]:
        latencies: list[float] = []
        pacer = Pacer(args.rate)
        await asyncio.gather(*(bare_resident(fake, first + i, pacer, latencies) for i in range(residents)))
        return len(latencies), latencies, 0

    async def bare_warm_up() -> object:
        return await bare_load(first=800_001, residents=args.warm_up)

    phase = await measured(
        f"bare-{number + 1}",
        echo,
        folder / "echo.log",
        bare_load,
        [],
        args.profile,
        bare_warm_up if args.warm_up else None,
    )
    fake.forget_calls()
    return phase


async def minyi_phase(
    args: argparse.Namespace,
    fake: RecordingTelegram,
    seeded: Seeded,
    url: str,
    folder: Path,
    workers: int,
    first_user: int,
    label: str,
    *,
    webhook: bool,
) -> Phase:
    bot = BotProcess.minyi(
        fake,
        url,
        args.transport,
        webhook=webhook,
        workers=workers,
        port=free_port(),
        extra_env={"MINYI_CONCURRENCY": str(args.concurrency)},
    )
    traces: list[Trace] = []

    async def minyi_load() -> tuple[int, list[float], int]:
        found = await run_residents(
            fake, seeded, args.residents, rate=args.rate, step_timeout=args.step_timeout,
            first_user_id=first_user,
        )  # fmt: skip
        traces.extend(found)
        latencies = [x for t in found for x in t.latencies]
        updates = sum(len(fake.sent.get(t.user_id, [])) for t in found)
        return updates, latencies, sum(t.finished for t in found)

    async def minyi_warm_up() -> object:
        return await run_residents(
            fake, seeded, args.warm_up, rate=args.rate, step_timeout=args.step_timeout,
            first_user_id=first_user + 500_000,
        )  # fmt: skip

    phase = await measured(
        label,
        bot,
        folder / f"{label}.log",
        minyi_load,
        fault_plan(args, fake, bot, url, folder),
        args.profile,
        minyi_warm_up if args.warm_up else None,
    )
    phase.audit = await audit(url, fake, traces)
    fake.forget_calls()
    if args.verbose and phase.audit.problems:
        print("\n".join(phase.audit.problems[:20]), file=sys.stderr)
    return phase


@contextlib.contextmanager
def no_full_collections() -> Iterator[None]:
    """The simulator and the residents run in this process, and what it records of the run grows with it:
    a full garbage collection walks all of that (a tenth of a second, late in a run), and the replies
    waiting meanwhile would count as the bot's latency. Young objects are still collected."""
    gc.collect()
    gc.freeze()
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, 1_000_000)  # a full collection after a million younger ones: never
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)
        gc.unfreeze()


async def profiler(bot: BotProcess, folder: str | None, name: str) -> asyncio.subprocess.Process | None:
    """py-spy sampling the running bot (and its workers), so the bot runs at nearly full speed."""
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    out = str(Path(folder) / f"{name}.txt")
    argv = [spy, "record", "--subprocesses", "--format", "raw", "-o", out, "--pid", str(bot.pid)]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def fault_plan(
    args: argparse.Namespace, fake: RecordingTelegram, bot: BotProcess, url: str, folder: Path
) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    plan: list[Callable[[], Coroutine[Any, Any, None]]] = []

    async def later(action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        await asyncio.sleep(args.fault_at)
        await action()

    if args.kill:

        async def kill_and_restart() -> None:
            await bot.kill()
            await bot.start(folder / "minyi-restarted.log")

        plan.append(lambda: later(kill_and_restart))
    if args.restart_postgres:
        plan.append(lambda: later(restart_postgres))
    if args.lock_sqlite:
        plan.append(lambda: later(lambda: lock_sqlite(url, args.lock_sqlite)))
    if args.api_faults:
        stop = asyncio.Event()  # cancelled with the phase
        plan.append(lambda: api_faults(fake, stop, args.fault_at))
    return plan


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def table(results: dict[str, Any]) -> str:
    rows = [("", "updates/s", "q/s", "p50 ms", "p95 ms", "p99 ms", "bot CPU %", "peak RSS MB")]
    if "bare" in results:
        b = results["bare"]
        rows.append(("bare " + results["transport"], b["updates_per_s"], "", b["p50_ms"], b["p95_ms"],
                     b["p99_ms"], b["bot_cpu_percent"], b["peak_rss_mb"]))  # fmt: skip
    for entry in results.get("scale") or [{**results, "workers": results["workers"]}]:
        rows.append((f"minyi x{entry['workers']}", entry["updates_per_s"], entry["questionnaires_per_s"],
                     entry["p50_ms"], entry["p95_ms"], entry["p99_ms"], entry["bot_cpu_percent"],
                     entry["peak_rss_mb"]))  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    ]
    lines.append("")
    lines.append(
        f"{results['transport']} on {results['db']}, {results['residents']} residents"
        + (f" at {results['rate']} updates/s" if results["rate"] else " as fast as possible")
        + f"; ratio to bare: {results['ratio']}; "
        f"lost {results['lost']}, duplicated {results['duplicated']}, "
        f"out of order {results['out_of_order']}, "
        f"unfinished {results['unfinished']}; RSS {results['rss_start_mb']} → {results['rss_end_mb']} MB; "
        f"simulator and residents used {results['bench_cpu_percent']} % CPU"
    )
    for number, entry in enumerate(results.get("rounds", []), start=1):
        lines.append(
            f"round {number}: bare {entry['bare_updates_per_s']} updates/s "
            f"({entry['bare_bot_cpu_ms_per_update']} ms CPU each), minyi {entry['updates_per_s']} "
            f"({entry['bot_cpu_ms_per_update']} ms), ratio {entry['ratio']}"
        )
    m = results["machine"]
    lines.append(f"machine: {m['nproc']} × {m['cpu']}, Python {m['python']}, load {m['load_average_1m']}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("aiogram", "ptb"), default="aiogram")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=None, help="steady updates/s (default: flat out)")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="N",
        help="measure the bare bot and Minyi N times, alternately; the median round is reported",
    )  # fmt: skip
    parser.add_argument("--skip-bare", action="store_true", help="no bare-framework reference")
    parser.add_argument("--webhook", action="store_true", help="webhook mode instead of long polling")
    parser.add_argument("--workers", default="1", help="bot processes, or a list to compare: 1,2,4")
    parser.add_argument("--concurrency", type=int, default=64, help="MINYI_CONCURRENCY of the bot")
    parser.add_argument(
        "--warm-up", type=int, default=20, metavar="N",
        help="residents who answer before each phase is measured (a fresh process sets up its connections)",
    )  # fmt: skip
    parser.add_argument("--step-timeout", type=float, default=120.0, help="seconds a resident waits")
    parser.add_argument("--fault-at", type=float, default=5.0, help="seconds into the load to inject")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the bot and start it again")
    parser.add_argument("--restart-postgres", action="store_true", help="restart the PostgreSQL server")
    parser.add_argument("--lock-sqlite", type=float, default=0.0, metavar="SECONDS",
                        help="another process holds SQLite's write lock this long")  # fmt: skip
    parser.add_argument("--api-faults", action="store_true", help="429, 5xx and slow Bot API answers")
    parser.add_argument("--redeliver", type=float, default=0.0, metavar="FRACTION",
                        help="deliver this share of updates twice")  # fmt: skip
    parser.add_argument("--profile", metavar="DIR", help="record py-spy profiles of the bots into DIR")
    parser.add_argument("--verbose", action="store_true", help="print what the audit found")
    args = parser.parse_args(argv)
    if args.restart_postgres and args.db != "postgres":
        parser.error("--restart-postgres needs --db postgres")
    if args.lock_sqlite and args.db != "sqlite":
        parser.error("--lock-sqlite needs --db sqlite")
    if (args.kill or args.restart_postgres or args.api_faults) and args.step_timeout == 120.0:
        args.step_timeout = 20.0  # a reply lost to the fault: the resident asks again sooner
    return args


def main() -> int:
    args = parse()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        print(table(results))
    clean = all(results.get(key) == 0 for key in ("lost", "duplicated", "out_of_order", "unfinished"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
