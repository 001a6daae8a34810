"""What both transports share: the Transport interface, safe handling of one update, and delivery retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from bot import texts
from bot.engine import DialogEngine
from bot.messages import Incoming, Kind, Reply
from bot.outbound import Failure, SendFailed
from storage import outreach
from storage.database import Database

__all__ = ["Failure", "SendFailed", "Transport", "deliver_with_retries", "handle_safely", "mark_blocked"]

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
# Connections Telegram may open to the webhook at once (the most it allows is 100): in webhook mode, the
# updates handled at once by all of a deployment's processes together.
WEBHOOK_CONNECTIONS = 40
MAX_RETRY_AFTER = 60.0  # seconds; a longer flood wait is given up on and logged


class Transport(Protocol):
    """A Telegram framework wired to the engine; `minyi run` and the tests use only this."""

    name: str

    async def run_polling(self) -> None:
        """Receive updates by long polling until `stop()` is called."""

    async def stop(self) -> None: ...

    async def start_webhook(self, url: str, secret: str, *, register: bool = True) -> None:
        """Get ready for `feed`; with `register`, tell the Bot API where to post updates (one of several
        worker processes does that)."""

    async def feed(self, update: dict[str, Any]) -> None:
        """Handle one update posted to the webhook; returns once its replies were sent."""

    async def close(self) -> None: ...

    async def send(self, reply: Reply) -> int | None:
        """One Bot API call outside an update (campaigns, alerts); see bot.outbound.Outbound."""


async def deliver_with_retries(
    replies: Sequence[Reply],
    send_one: Callable[[Reply], Awaitable[Any]],
    classify: Callable[[Exception], Failure | None],
    on_blocked: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Send replies in order; retry flood waits and server errors, give up on blocked users.

    Replies may go to several chats (an alert acknowledged in one chat updates the copies in others):
    a chat that blocked the bot gets nothing more, the others still get theirs.
    """
    blocked: set[int] = set()
    for reply in replies:
        if reply.chat_id in blocked:
            continue
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                await send_one(reply)
                break
            except Exception as error:
                failure = classify(error)
                if failure is None:
                    raise
                if failure.blocked:
                    log.info("chat %s blocked the bot; reply dropped", reply.chat_id)
                    blocked.add(reply.chat_id)
                    if on_blocked is not None:
                        await on_blocked(reply.chat_id)
                    break
                if not failure.retry or attempt == DELIVERY_ATTEMPTS or failure.delay > MAX_RETRY_AFTER:
                    log.warning("giving up on %s to chat %s: %s", reply.action, reply.chat_id, error)
                    break
                await asyncio.sleep(failure.delay or 0.1 * 2**attempt)


async def handle_safely(
    engine: DialogEngine, incoming: Incoming, deliver: Callable[[Sequence[Reply]], Awaitable[None]]
) -> None:
    """Run the engine on one update; if anything fails, the person still gets a short, kind message
    (their earlier answers are committed; this update's change was rolled back)."""
    try:
        await engine.handle(incoming, deliver)
    except Exception:
        log.exception("update %s failed", incoming.update_id)
        fallback = [Reply.send(incoming.chat_id, texts.ERROR)]
        if incoming.kind is Kind.CALLBACK:
            fallback.append(Reply.answer_callback(incoming.callback_id))
        try:
            await deliver(fallback)
        except Exception:
            log.exception("could not tell chat %s about the failure", incoming.chat_id)


async def mark_blocked(db: Database, chat_id: int) -> None:
    """Remember that a person blocked the bot (403), so pushes leave them out until they write again."""
    try:
        async with db.transaction() as session:
            await outreach.mark_blocked(session, chat_id)
    except Exception:  # never let bookkeeping break the delivery of other replies
        log.exception("could not mark chat %s as blocked", chat_id)
