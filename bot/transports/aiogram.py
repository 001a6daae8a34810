"""The aiogram 3 transport: turns aiogram events into Incoming and Replies into Bot API calls."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageText,
    GetMe,
    GetUpdates,
    SendMessage,
    SendPhoto,
    SetWebhook,
)
from aiogram.methods.base import Response
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageId,
    Update,
)
from aiohttp import ClientConnectorError

from bot.engine import DialogEngine
from bot.messages import Button, Incoming, Kind, Reply
from bot.transports.base import (
    WEBHOOK_CONNECTIONS,
    Failure,
    SendFailed,
    deliver_with_retries,
    handle_safely,
    mark_blocked,
)
from bot.transports.polling import Poller

KEYBOARD_CACHE = 512  # keyboards kept built: a questionnaire's questions, and then some


class SendForId(SendMessage):
    """sendMessage whose answer is read for its message_id only. Telegram echoes the whole message back
    (sender, chat, text, keyboard), and aiogram would build a Message of it with every one of its many
    fields: five times the CPU (measured: 190 µs against 39 µs for a question with six buttons)."""

    __returning__ = MessageId  # type: ignore[assignment]


class EditForNothing(EditMessageText):
    """editMessageText whose answer is not read beyond success (it echoes the edited message back)."""

    __returning__ = MessageId | bool


# aiogram parses every Bot API reply with a pydantic model Response[T] that it builds on the spot; pydantic
# caches such models only weakly, so the garbage collector drops them and the next reply builds them again
# (a tenth of the bot's CPU under load, measured with py-spy). Holding them here keeps them cached.
_RESPONSE_MODELS = [
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (
        AnswerCallbackQuery, DeleteWebhook, EditForNothing, GetMe, GetUpdates, SendForId, SendPhoto,
        SetWebhook,
    )
]  # fmt: skip


class AiogramTransport:
    name = "aiogram"

    def __init__(self, engine: DialogEngine, token: str, api_url: str, *, concurrency: int = 64) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self.poller = Poller(api_url, token, self.feed, concurrency=concurrency)
        self.bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
        # Dialog state lives in the database: aiogram's FSM is not used, so its middleware (a storage look-up
        # per update, and in the stock storage a record for every user ever seen) is left out.
        self.dispatcher = Dispatcher(disable_fsm=True)
        self.dispatcher.message.register(self._on_message)
        self.dispatcher.callback_query.register(self._on_callback)

    async def _on_message(self, message: Message, event_update: Update) -> None:
        text = message.text or ""
        incoming = Incoming(
            update_id=event_update.update_id,
            user_id=message.from_user.id if message.from_user else message.chat.id,
            chat_id=message.chat.id,
            chat_type=message.chat.type,
            kind=Kind.TEXT if message.text is not None else Kind.OTHER,
            text=text,
            media="" if message.text is not None else str(message.content_type),
        )
        await handle_safely(self.engine, incoming, self._deliver)

    async def _on_callback(self, query: CallbackQuery, event_update: Update) -> None:
        message = query.message
        chat_id = message.chat.id if message else query.from_user.id
        incoming = Incoming(
            update_id=event_update.update_id,
            user_id=query.from_user.id,
            chat_id=chat_id,
            chat_type=message.chat.type if message else "private",
            kind=Kind.CALLBACK,
            callback_data=query.data or "",
            callback_id=query.id,
            message_id=message.message_id if message else None,
        )
        await handle_safely(self.engine, incoming, self._deliver)

    async def _deliver(self, replies: Sequence[Reply]) -> None:
        await deliver_with_retries(replies, self._send_one, _classify, self._blocked)

    async def _blocked(self, chat_id: int) -> None:
        await mark_blocked(self.engine.db, chat_id)

    async def send(self, reply: Reply) -> int | None:
        try:
            return await self._send_one(reply)
        except Exception as error:
            failure = _classify(error)
            if failure is None:
                raise
            raise SendFailed(failure, str(error)) from error

    async def _send_one(self, reply: Reply) -> int | None:
        markup = _markup(reply)
        if reply.action == "send":
            # (mypy reads the subclasses' fields as required: aiogram's own signature is for the base class)
            send = SendForId(chat_id=reply.chat_id, text=reply.text, reply_markup=markup)  # type: ignore[call-arg]
            return (await self.bot(send)).message_id
        if reply.action == "photo":
            image = BufferedInputFile(reply.image, filename="minyi.png")
            sent = await self.bot.send_photo(
                reply.chat_id, image, caption=reply.text or None, reply_markup=markup
            )
            return sent.message_id
        if reply.action == "edit":
            assert reply.message_id is not None
            try:
                edit = EditForNothing(  # type: ignore[call-arg]
                    text=reply.text, chat_id=reply.chat_id, message_id=reply.message_id, reply_markup=markup
                )
                await self.bot(edit)
            except TelegramBadRequest as error:
                if "not modified" not in str(error):  # a repeated edit is harmless
                    raise
            return None
        await self.bot.answer_callback_query(reply.callback_id, text=reply.text or None)
        return None

    async def run_polling(self) -> None:
        await self.bot.delete_webhook()
        # Our poller, not aiogram's: it confirms an update to Telegram only once it was handled.
        await self.poller.run()

    async def stop(self) -> None:
        self.poller.stop()

    async def start_webhook(self, url: str, secret: str, *, register: bool = True) -> None:
        if register:
            await self.bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=["message", "callback_query"],
                max_connections=WEBHOOK_CONNECTIONS,
            )

    async def feed(self, update: dict[str, Any]) -> None:
        await self.dispatcher.feed_raw_update(self.bot, update)

    async def close(self) -> None:
        await self.bot.session.close()


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    return keyboard(reply.buttons) if reply.buttons else None


@functools.lru_cache(maxsize=KEYBOARD_CACHE)
def keyboard(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup:
    """The aiogram keyboard for `buttons`, built once: every resident at a question gets the same buttons,
    and pydantic validating each of them again cost about 30 µs per message (six buttons). Shared safely:
    aiogram only reads a markup when it sends it."""
    rows = [[InlineKeyboardButton(text=b.text, callback_data=b.data) for b in row] for row in buttons]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _classify(error: Exception) -> Failure | None:
    if isinstance(error, TelegramRetryAfter):
        return Failure(retry=True, delay=float(error.retry_after))
    if isinstance(error, TelegramForbiddenError):
        return Failure(retry=False, blocked=True)
    if isinstance(error, TelegramServerError):
        return Failure(retry=True)
    if isinstance(error, TelegramNetworkError):
        # Only a connection that was never made certainly carried nothing to Telegram.
        return Failure(retry=True, ambiguous=not isinstance(error.__cause__, ClientConnectorError))
    if isinstance(error, TelegramBadRequest):
        return Failure(retry=False)
    return None
