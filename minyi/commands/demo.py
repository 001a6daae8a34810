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

    if not 1 <= args.residents <= 2000:
        raise CommandError("--residents must be between 1 and 2000")
    result = run(run_demo(Path(args.dir), residents=args.residents, transport=args.transport))
    print(report(result))
    return 0
