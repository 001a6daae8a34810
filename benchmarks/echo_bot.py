"""The bare-framework reference: a minimal echo bot on aiogram or PTB, with no engine and no database.

It makes the same Bot API calls per update as Minyi does (a text gets one message with a button back; a
tap gets the tapped message edited, one new message and the callback answered), with the same framework
settings (concurrency 64, a connection pool of 64), so the ratio measures what Minyi adds. It imports the
frameworks directly on purpose: it stands in for them, not for Minyi.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

CONCURRENCY = 64


async def run_aiogram(token: str, api_url: str, stop: asyncio.Event) -> None:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.methods import (
        AnswerCallbackQuery,
        DeleteWebhook,
        EditMessageText,
        GetUpdates,
        Response,
        SendMessage,
    )
    from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

    def keyboard(n: int) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="好", callback_data=f"e:{n}")]]
        )

    # aiogram parses every reply with a pydantic model Response[T] that pydantic caches only weakly, so the
    # garbage collector drops it and the next reply builds it again (a third of this bot's CPU). Minyi's
    # transport holds these models; so does this bot, or the ratio would credit Minyi with that fix.
    held = [
        Response[method.__returning__]  # type: ignore[name-defined]
        for method in (AnswerCallbackQuery, DeleteWebhook, EditMessageText, GetUpdates, SendMessage)
    ]
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def on_message(message: Message) -> None:
        await bot.send_message(message.chat.id, f"回声：{message.text or ''}", reply_markup=keyboard(1))

    @dispatcher.callback_query()
    async def on_callback(query: CallbackQuery) -> None:
        assert query.message is not None
        chat_id = query.message.chat.id
        await bot.edit_message_text(
            text=f"已选：{query.data}", chat_id=chat_id, message_id=query.message.message_id
        )
        await bot.send_message(chat_id, "下一题", reply_markup=keyboard(2))
        await bot.answer_callback_query(query.id)

    await bot.delete_webhook()
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            tasks_concurrency_limit=CONCURRENCY,
            allowed_updates=["message", "callback_query"],
        )
    )
    await stop.wait()
    await dispatcher.stop_polling()
    await polling
    await bot.session.close()
    del held


async def run_ptb(token: str, api_url: str, stop: asyncio.Event) -> None:
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.ext import ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

    def keyboard(n: int) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton("好", callback_data=f"e:{n}")]])

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .concurrent_updates(CONCURRENCY)
        .connection_pool_size(CONCURRENCY)
        .pool_timeout(30)
        .build()
    )

    async def on_message(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        await app.bot.send_message(message.chat.id, f"回声：{message.text or ''}", reply_markup=keyboard(1))

    async def on_callback(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        chat_id = query.message.chat.id
        await app.bot.edit_message_text(
            f"已选：{query.data}", chat_id=chat_id, message_id=query.message.message_id
        )
        await app.bot.send_message(chat_id, "下一题", reply_markup=keyboard(2))
        await app.bot.answer_callback_query(query.id)

    app.add_handler(MessageHandler(filters.ALL, on_message))
    app.add_handler(CallbackQueryHandler(on_callback))
    await app.initialize()
    await app.bot.delete_webhook()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(timeout=10, allowed_updates=["message", "callback_query"])
    await stop.wait()
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def main(transport: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token, api_url = os.environ["MINYI_BOT_TOKEN"], os.environ["MINYI_TELEGRAM_API_URL"]
    runner: Any = run_aiogram if transport == "aiogram" else run_ptb
    await runner(token, api_url, stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("aiogram", "ptb"), default="aiogram")
    logging.basicConfig(level=logging.WARNING)
    transport = parser.parse_args().transport
    # The event loop Minyi's processes run on (minyi.commands.common.run), so the ratio compares like with
    # like: uvloop where installed, as aiogram's own "fast" extra installs it.
    run: Any = asyncio.run
    if os.environ.get("MINYI_EVENT_LOOP", "").strip().lower() != "asyncio":
        with contextlib.suppress(ImportError):
            import uvloop

            run = uvloop.run
    run(main(transport))
