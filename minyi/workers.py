"""`minyi run --webhook --workers N`: N bot processes sharing one webhook port, kept running by a parent."""

from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from bot.transports.base import WEBHOOK_CONNECTIONS

# A worker that dies is started again after this pause, so a worker that cannot start does not spin.
RESTART_DELAY = 1.0
STOP_GRACE = 20.0


def worker_argv(transport: str, index: int) -> list[str]:
    return [sys.executable, "-m", "minyi.cli", "run", "--transport", transport, "--webhook",
            "--worker-index", str(index)]  # fmt: skip


def worker_environment(count: int, concurrency: int, environment: Mapping[str, str]) -> dict[str, str]:
    """What every worker is started with: one webhook secret for all (made up here when none is set),
    and each worker's share of the updates handled at once.

    Telegram opens at most 40 connections to a webhook in all, spread across the workers, and a worker
    keeps a database connection open for each update it may handle at once: four workers with the whole
    share each held 176 connections, more than PostgreSQL allows by default (100)."""
    env = dict(environment)
    env["MINYI_WEBHOOK_SECRET"] = env.get("MINYI_WEBHOOK_SECRET", "").strip() or secrets.token_urlsafe(32)
    env["MINYI_CONCURRENCY"] = str(max(1, math.ceil(min(concurrency, WEBHOOK_CONNECTIONS) / count)))
    return env


def serve_workers(
    transport: str, count: int, *, concurrency: int, argv: Sequence[str] | None = None
) -> int:
    """Start `count` webhook workers and keep them running until SIGINT or SIGTERM.

    Every worker listens on the same host and port (SO_REUSEPORT: the kernel spreads connections
    across them); only worker 0 registers the webhook with Telegram. All of them share one webhook
    secret and one database: on PostgreSQL a resident's row lock keeps their updates one at a time
    across workers, and each update is handled once wherever it lands.
    """
    env = worker_environment(count, concurrency, os.environ)
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(argv) if argv is not None else worker_argv(transport, index), env=env)

    workers = {index: start(index) for index in range(count)}
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if process.poll() is not None and not stopping:
                    print(
                        f"minyi: worker {index} ended ({process.returncode}); starting it again",
                        file=sys.stderr,
                    )
                    time.sleep(RESTART_DELAY)
                    workers[index] = start(index)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in workers.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return 0
