"""`minyi demo`: runs the offline demo and prints what the database holds afterwards."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import run
from minyi.settings import TRANSPORTS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="offline demo: a simulated Telegram, the bot and 50 residents"
    )
    parser.add_argument("--residents", type=int, default=50)
    parser.add_argument("--transport", choices=TRANSPORTS, default="aiogram")
    parser.add_argument(
        "--dir", default="minyi-data", help="where the demo database goes (default: minyi-data)"
    )
    parser.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from minyi.demo import report, run_demo
    from minyi.processes import BotStartError

    if not 1 <= args.residents <= 2000:
        raise CommandError("--residents must be between 1 and 2000")
    folder = Path(args.dir).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot use {args.dir} for the demo's data: {error.strerror or error}") from None
    try:
        result = run(run_demo(folder, residents=args.residents, transport=args.transport))
    except BotStartError as error:
        log = folder / "demo-bot.log"
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.exists() else []
        reason = lines[-1] if lines else "no output"
        raise CommandError(f"{error} ({reason}); the bot's log is {log}") from None
    print(report(result))
    return 0
