"""The python-telegram-bot 22 transport: turns PTB updates into Incoming and Replies into Bot API calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.engine import DialogEngine
from bot.messages import Incoming, Kind, Reply
from bot.transports.base import (
    WEBHOOK_CONNECTIONS,
    Failure,
    SendFailed,
    deliver_with_retries,
    handle_safely,
    mark_blocked,
)
from bot.transports.polling import Poller

_MEDIA = (
    "sticker",
    "photo",
    "voice",
    "video",
    "video_note",
    "audio",
    "animation",
    "document",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
)


class PTBTransport:
    name = "ptb"

    def __init__(self, engine: DialogEngine, token: str, api_url: str, *, concurrency: int = 64) -> None:
        # Opt in to PTB 22's timedelta durations: otherwise reading RetryAfter.retry_after on a 429 issues
        # a deprecation warning (an error under the test suite's warning policy). PTB reads it at run time.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self.engine = engine
        self.app: Application[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(token)
            .base_url(f"{api_url}/bot")
            .base_file_url(f"{api_url}/file/bot")
            # PTB's default pool of one connection would serialise every reply of every user.
            .connection_pool_size(concurrency)
            .pool_timeout(30)
            .build()
        )
        self.app.add_handler(MessageHandler(filters.ALL, self._on_message))
        self.app.add_handler(CallbackQueryHandler(self._on_callback))
        self.poller = Poller(api_url, token, self.feed, concurrency=concurrency)
        # Polling and background sending may both be first to need the client; it is set up once.
        self._initializing = asyncio.Lock()

    async def _initialize(self) -> None:
        async with self._initializing:
            if not self.app._initialized:
                await self.app.initialize()

    async def _on_message(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        media = next((name for name in _MEDIA if getattr(message, name, None)), "other")
        incoming = Incoming(
            update_id=update.update_id,
            user_id=message.from_user.id if message.from_user else message.chat.id,
            chat_id=message.chat.id,
            chat_type=message.chat.type,
            kind=Kind.TEXT if message.text is not None else Kind.OTHER,
            text=message.text or "",
            media="" if message.text is not None else media,
        )
        await handle_safely(self.engine, incoming, self._deliver)

    async def _on_callback(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message
        incoming = Incoming(
            update_id=update.update_id,
            user_id=query.from_user.id,
            chat_id=message.chat.id if message else query.from_user.id,
            chat_type=message.chat.type if message else "private",
            kind=Kind.CALLBACK,
            callback_data=str(query.data or ""),
            callback_id=query.id,
            message_id=message.message_id if message else None,
        )
        await handle_safely(self.engine, incoming, self._deliver)

    async def _deliver(self, replies: Sequence[Reply]) -> None:
        await deliver_with_retries(replies, self._send_one, _classify, self._blocked)

    async def _blocked(self, chat_id: int) -> None:
        await mark_blocked(self.engine.db, chat_id)

    async def send(self, reply: Reply) -> int | None:
        await self._initialize()  # `minyi push` sends without ever polling
        try:
            return await self._send_one(reply)
        except Exception as error:
            failure = _classify(error)
            if failure is None:
                raise
            raise SendFailed(failure, str(error)) from error

    async def _send_one(self, reply: Reply) -> int | None:
        bot = self.app.bot
        markup = _markup(reply)
        if reply.action == "send":
            sent = await bot.send_message(reply.chat_id, reply.text, reply_markup=markup)
            return int(sent.message_id)
        if reply.action == "photo":
            sent = await bot.send_photo(
                reply.chat_id, reply.image, caption=reply.text or None, reply_markup=markup
            )
            return int(sent.message_id)
        if reply.action == "edit":
            try:
                await bot.edit_message_text(
                    reply.text, chat_id=reply.chat_id, message_id=reply.message_id, reply_markup=markup
                )
            except BadRequest as error:
                if "not modified" not in str(error):  # a repeated edit is harmless
                    raise
            return None
        await bot.answer_callback_query(reply.callback_id, text=reply.text or None)
        return None

    async def run_polling(self) -> None:
        await self._initialize()
        await self.app.bot.delete_webhook()
        # Our poller, not PTB's Updater: it confirms an update to Telegram only once it was handled.
        await self.poller.run()

    async def stop(self) -> None:
        self.poller.stop()

    async def start_webhook(self, url: str, secret: str, *, register: bool = True) -> None:
        await self._initialize()
        if register:
            await self.app.bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=["message", "callback_query"],
                max_connections=WEBHOOK_CONNECTIONS,
            )

    async def feed(self, update: dict[str, Any]) -> None:
        await self.app.process_update(Update.de_json(update, self.app.bot))

    async def close(self) -> None:
        if self.app._initialized:
            await self.app.shutdown()


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.data) for b in row] for row in reply.buttons]
    )


def _classify(error: Exception) -> Failure | None:
    if isinstance(error, RetryAfter):
        wait = error.retry_after
        seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
        return Failure(retry=True, delay=seconds)
    if isinstance(error, Forbidden):
        return Failure(retry=False, blocked=True)
    if isinstance(error, BadRequest):
        return Failure(retry=False)
    if isinstance(error, TimedOut):
        # The request may have reached Telegram, unless it never left the connection pool.
        never_sent = isinstance(error.__cause__, httpx.PoolTimeout | httpx.ConnectTimeout)
        return Failure(retry=True, ambiguous=not never_sent)
    if isinstance(error, NetworkError):
        # A 5xx answer, or a failure in transit; only a connection never made certainly carried nothing.
        cause = error.__cause__
        in_transit = isinstance(cause, httpx.HTTPError) and not isinstance(cause, httpx.ConnectError)
        return Failure(retry=True, ambiguous=in_transit)
    return None
