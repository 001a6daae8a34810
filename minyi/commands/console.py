"""`minyi console`: serve the assessors' web console on this machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from minyi.commands import CommandError
from minyi.commands.common import database, run, settings
from minyi.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("console", help="serve the assessors' web console")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.set_defaults(func=console_command)


def console_config(config: Settings) -> Any:
    from console.auth import Limits
    from console.web import ConsoleConfig

    try:
        zone = ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CommandError(f"MINYI_TIMEZONE: unknown time zone {config.timezone!r}") from error
    limits = Limits(idle=timedelta(minutes=config.console_session_minutes))
    return ConsoleConfig(limits=limits, secure_cookies=config.console_secure_cookies, zone=zone)


async def serve(host: str, port: int) -> None:
    from aiohttp import web

    from console.app import create_app

    config = settings()
    console = console_config(config)
    async with database(config) as db:
        runner = web.AppRunner(create_app(db, console), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}") from error
        print(f"console at http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def console_command(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.host, args.port))
    return 0
