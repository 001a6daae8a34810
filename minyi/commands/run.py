"""`minyi run`: the bot, by long polling or behind a webhook, with either transport."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import aiohttp

from minyi.commands import CommandError
from minyi.commands.common import database, run, settings
from minyi.settings import TRANSPORTS, Settings
from minyi.wiring import push_settings, run_bot
from minyi.workers import serve_workers

BOT_API_TIMEOUT = 20.0  # seconds for the start-up check: a slow network, not a dead one


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
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="webhook mode: this many bot processes share the port and the database (default 1)",
    )
    # Set by `--workers` for each process it starts; worker 0 registers the webhook.
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.set_defaults(func=run_command)


async def check_bot_api(config: Settings) -> None:
    """Ask the Bot API who the bot is before starting, so a wrong address or token is one clear line
    instead of a framework's traceback. (Once running, the frameworks ride out network trouble.)"""
    root = config.telegram_api_url.rstrip("/")
    url = f"{root}/bot{config.bot_token}/getMe"  # the token is never printed: it is the bot's password
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOT_API_TIMEOUT)) as http,
            http.get(url) as response,
        ):
            status = response.status
            answer = await response.json(content_type=None) if status != 404 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        reason = str(error) or type(error).__name__
        raise CommandError(f"cannot reach the Telegram Bot API at {root}: {reason}") from None
    if status in (401, 404):
        raise CommandError(f"the Bot API at {root} does not know MINYI_BOT_TOKEN ({status}): check the token")
    if status != 200 or not isinstance(answer, dict) or not answer.get("ok"):
        raise CommandError(f"the Bot API at {root} answered getMe with HTTP {status}")


def run_command(args: argparse.Namespace) -> int:
    config = settings()
    if not config.bot_token:
        raise CommandError("MINYI_BOT_TOKEN is not set (get one from @BotFather)")
    transport = args.transport or config.transport
    if transport not in TRANSPORTS:
        raise CommandError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
    try:
        push_settings(config)
    except ValueError as error:
        raise CommandError(str(error)) from error
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    run(check_bot_api(config))
    if args.workers > 1:
        if not args.webhook:
            raise CommandError("--workers needs --webhook: Telegram hands long-polled updates to one process")
        return serve_workers(transport, args.workers, concurrency=config.concurrency)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Both frameworks log every update or request at INFO: measurable CPU under load, and noise.
    for chatty in ("aiogram.event", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    async def check_then_run() -> None:
        async with database(config):
            pass  # refuses to start on a database that was not upgraded
        await run_bot(config, transport, webhook=args.webhook, register_webhook=args.worker_index == 0)

    run(check_then_run())
    return 0
