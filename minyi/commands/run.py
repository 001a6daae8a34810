"""`minyi run`: the bot, by long polling or behind a webhook, with either transport."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from minyi.commands import CommandError
from minyi.commands.common import database, run, settings
from minyi.wiring import TRANSPORTS, run_bot


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the Telegram bot")
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=None,
        help="Telegram framework (default: MINYI_TRANSPORT or aiogram)",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="receive updates on MINYI_WEBHOOK_HOST:PORT/telegram instead of long polling",
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    config = settings()
    if not config.bot_token:
        raise CommandError("MINYI_BOT_TOKEN is not set (get one from @BotFather)")
    transport = args.transport or config.transport
    if transport not in TRANSPORTS:
        raise CommandError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def check_then_run() -> None:
        async with database(config):
            pass  # refuses to start on a database that was not upgraded
        await run_bot(config, transport, webhook=args.webhook)

    run(check_then_run())
    return 0
