"""Wiring: builds the database, the dialog engine and a transport from Settings; runs the bot."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.classifier_process import ProcessTagger
from bot.dispatch import Dispatch
from bot.engine import DialogEngine
from bot.push import PushSettings, QuietHours
from bot.tagging import Tagger
from bot.transports.base import Transport
from bot.transports.polling import MOST_IN_HAND
from minyi.settings import TRANSPORTS, Settings
from storage.database import Database

log = logging.getLogger(__name__)


POOL_OVERFLOW = 2  # connections opened beyond the pool in a burst of background work, closed after


def open_database(settings: Settings) -> Database:
    # No pre-ping: the engine retries an update whose connection was dropped (a PostgreSQL restart), and
    # the ping was a round trip on every update (8% of the bot's busy time under load, by py-spy).
    return Database(
        settings.database_url, pool_size=pool_size(settings), max_overflow=POOL_OVERFLOW, pre_ping=False
    )


def pool_size(settings: Settings) -> int:
    """Database connections kept open: one per update handled at once, and a few for the background work
    (alerts, pushes, the classifier's results). A smaller pool opened and closed connections under load,
    each a dozen round trips to set up: 7 % of the bot's CPU, by py-spy."""
    return min(settings.concurrency, MOST_IN_HAND) + 4


def push_settings(settings: Settings) -> PushSettings:
    """Pacing, quiet hours and schedules of what the bot sends on its own; ValueError on a bad value."""
    days = settings.remind_after_days
    return PushSettings(
        rate=settings.push_rate,
        quiet=QuietHours.parse(settings.quiet_hours, settings.timezone),
        remind_after=timedelta(days=days) if days > 0 else None,
        alert_admins_after=timedelta(minutes=max(1, settings.alert_escalate_minutes)),
    )


def make_engine(settings: Settings, db: Database, tagger: Tagger | None = None) -> DialogEngine:
    return DialogEngine(
        db,
        bot_username=settings.bot_username,
        link_secret=settings.link_secret,
        tagger=tagger,
        crisis_line=settings.crisis_line,
        push=push_settings(settings),
    )


def make_transport(name: str, engine: DialogEngine, settings: Settings) -> Transport:
    if name == "aiogram":
        from bot.transports.aiogram import AiogramTransport

        return AiogramTransport(
            engine, settings.bot_token, settings.telegram_api_url, concurrency=settings.concurrency
        )
    if name == "ptb":
        from bot.transports.ptb import PTBTransport

        return PTBTransport(
            engine, settings.bot_token, settings.telegram_api_url, concurrency=settings.concurrency
        )
    raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")


# Container objects allocated (net) before the cyclic collector looks at the youngest ones; Python's
# default is 700. Each update allocates thousands (pydantic models, ORM rows, futures) and forty updates
# are in hand at once, so at 700 a collection mostly finds live objects, promotes them, and the older
# generations then walk them again. Measured on the load benchmark (aiogram, PostgreSQL, 4,413 updates):
# the collector took 1.43 s of CPU at 700, 0.55 s at 5,000 and 0.27 s at 50,000, about 6 % of the bot's
# CPU at the default. 10,000 keeps most of that gain with pauses of about a hundredth of a second.
YOUNG_GENERATION = 10_000


def settle_garbage_collector() -> None:
    """Once start-up is done: freeze what it built, and collect the youngest generation less often.

    What start-up built (the frameworks, SQLAlchemy's and pydantic's models: hundreds of thousands of
    objects) lives as long as the process; left to the cyclic collector, every full collection walks all
    of it again: a quarter of a second each, several times a minute under load (a tenth of the bot's CPU,
    and the slowest replies). Frozen, full collections only walk what came after.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, oldest)


async def run_bot(
    settings: Settings,
    transport_name: str,
    *,
    webhook: bool = False,
    stop: asyncio.Event | None = None,
    register_webhook: bool = True,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set): long polling by default, or a webhook server."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not in the main thread: asyncio raises RuntimeError, uvloop ValueError.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    db = open_database(settings)
    tagger = ProcessTagger()
    engine = make_engine(settings, db, tagger)
    transport = make_transport(transport_name, engine, settings)
    # Alerts, pushes, reminders and notices go out through the same transport, paced on their own.
    dispatch = Dispatch(db, transport, engine.push)
    outreach: asyncio.Task[None] | None = None
    try:
        # The classifier's process loads the risk model before the bot takes updates: built while residents
        # talk, it would leave their first grievances waiting.
        await tagger.start()
        # Open the pool's connections now, not one by one while the first residents wait.
        await db.open_connections(pool_size(settings))
        settle_garbage_collector()
        await engine.tagging.catch_up()  # grievances left unclassified by an earlier run
        outreach = asyncio.create_task(dispatch.run())
        if webhook:
            await _serve_webhook(settings, transport, stop, register=register_webhook)
        else:
            polling = asyncio.create_task(transport.run_polling())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            await transport.stop()
            await polling
            stopping.cancel()
    finally:
        if outreach is not None:
            dispatch.stop()  # calls in progress finish; whoever was not called yet stays queued
            await outreach
        await transport.close()
        await engine.tagging.drain()
        await tagger.close()
        await db.dispose()


async def _serve_webhook(
    settings: Settings, transport: Transport, stop: asyncio.Event, *, register: bool = True
) -> None:
    secret = settings.webhook_secret or secrets.token_urlsafe(32)

    async def receive(request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), secret):
            return web.Response(status=403)
        update: dict[str, Any] = await request.json()
        # Answer only after the update was handled: if this process dies first, Telegram redelivers it,
        # and the engine's idempotency makes the second delivery harmless.
        await transport.feed(update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # reuse_port: several worker processes (`minyi run --workers N`) listen on one port.
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port, reuse_port=True)
    await site.start()
    url = settings.webhook_url or f"http://{settings.webhook_host}:{settings.webhook_port}/telegram"
    await transport.start_webhook(url, secret, register=register)
    log.info(
        "webhook listening on %s:%s, registered as %s", settings.webhook_host, settings.webhook_port, url
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
