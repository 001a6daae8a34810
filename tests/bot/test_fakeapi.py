"""The local Bot API simulator, driven by real aiogram and python-telegram-bot clients over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pytest
import telegram
import telegram.error
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher, F
from aiogram import exceptions as aiogram_errors
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from PIL import Image
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, MessageHandler
from telegram.ext import filters as ptb_filters
from telegram.request import HTTPXRequest

from bot import simusers
from bot.fakeapi import FakeTelegram

Row = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Seen:
    """One update as a bot saw it through its framework's parsed objects."""

    update_id: int
    kind: str  # "message", "callback" or another update type
    chat_id: int = 0
    text: str = ""  # message text, or "<sticker>", "<photo>" ... for media
    data: str = ""
    callback_id: str = ""
    message_id: int = 0
    chat_type: str = ""


class Client(Protocol):
    """The few Bot API calls the tests need, made through one framework's own Bot object."""

    name: str

    async def send(
        self,
        chat_id: int,
        text: str,
        buttons: Row = (),
        parse_mode: str | None = None,
        wait: float | None = None,
    ) -> int: ...
    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Row = ()) -> None: ...
    async def edit_markup(self, chat_id: int, message_id: int, buttons: Row) -> None: ...
    async def delete(self, chat_id: int, message_id: int) -> None: ...
    async def answer(self, callback_id: str, text: str) -> None: ...
    async def send_photo(self, chat_id: int, photo: bytes, caption: str) -> None: ...
    async def updates(self, offset: int, poll: int, allowed: list[str] | None = None) -> list[Seen]: ...
    async def set_webhook(self, url: str, secret: str, max_connections: int = 40) -> None: ...
    async def delete_webhook(self) -> None: ...
    async def webhook_error(self) -> str | None: ...
    async def set_commands(self, commands: list[tuple[str, str]]) -> None: ...
    async def get_commands(self) -> list[tuple[str, str]]: ...
    async def delete_commands(self) -> None: ...
    def classify(self, error: Exception) -> str: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...


MEDIA = ("sticker", "photo", "voice", "location", "contact")


class PromptSession(AiohttpSession):
    """aiogram waits 250 ms on close for TLS connections to wind down; local plain HTTP has none."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def local_request() -> HTTPXRequest:
    """PTB's HTTP client, minus loading the CA bundle (0.3 s per client) that plain local HTTP never uses."""
    return HTTPXRequest(httpx_kwargs={"verify": False})


def aiogram_bot(fake: FakeTelegram, token: str | None = None) -> AiogramBot:
    return AiogramBot(token or fake.token, session=PromptSession(api=TelegramAPIServer.from_base(fake.url)))


class AiogramClient:
    name = "aiogram"

    def __init__(self, fake: FakeTelegram, token: str | None = None) -> None:
        self.bot = aiogram_bot(fake, token)

    @staticmethod
    def _markup(buttons: Row) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data) for text, data in buttons]]
        )

    async def send(
        self,
        chat_id: int,
        text: str,
        buttons: Row = (),
        parse_mode: str | None = None,
        wait: float | None = None,
    ) -> int:
        message = await self.bot.send_message(
            chat_id, text, reply_markup=self._markup(buttons), parse_mode=parse_mode, request_timeout=wait
        )
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Row = ()) -> None:
        await self.bot.edit_message_text(
            text=text, chat_id=chat_id, message_id=message_id, reply_markup=self._markup(buttons)
        )

    async def edit_markup(self, chat_id: int, message_id: int, buttons: Row) -> None:
        await self.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=self._markup(buttons)
        )

    async def delete(self, chat_id: int, message_id: int) -> None:
        await self.bot.delete_message(chat_id, message_id)

    async def answer(self, callback_id: str, text: str) -> None:
        await self.bot.answer_callback_query(callback_id, text=text, show_alert=False)

    async def send_photo(self, chat_id: int, photo: bytes, caption: str) -> None:
        await self.bot.send_photo(chat_id, BufferedInputFile(photo, "qr.png"), caption=caption)

    async def updates(self, offset: int, poll: int, allowed: list[str] | None = None) -> list[Seen]:
        return [
            self._seen(update)
            for update in await self.bot.get_updates(offset=offset, timeout=poll, allowed_updates=allowed)
        ]

    @staticmethod
    def _seen(update: Update) -> Seen:
        if update.message is not None:
            message = update.message
            text = message.text if message.text is not None else f"<{message.content_type.value}>"
            return Seen(
                update.update_id,
                "message",
                message.chat.id,
                text,
                message_id=message.message_id,
                chat_type=message.chat.type,
            )
        if (query := update.callback_query) is not None:
            assert isinstance(query.message, Message)
            return Seen(
                update.update_id,
                "callback",
                query.message.chat.id,
                data=query.data or "",
                callback_id=query.id,
                message_id=query.message.message_id,
            )
        return Seen(update.update_id, str(update.event_type))

    async def set_webhook(self, url: str, secret: str, max_connections: int = 40) -> None:
        await self.bot.set_webhook(url, secret_token=secret, max_connections=max_connections)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook()

    async def webhook_error(self) -> str | None:
        return (await self.bot.get_webhook_info()).last_error_message

    async def set_commands(self, commands: list[tuple[str, str]]) -> None:
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands])

    async def get_commands(self) -> list[tuple[str, str]]:
        return [(c.command, c.description) for c in await self.bot.get_my_commands()]

    async def delete_commands(self) -> None:
        await self.bot.delete_my_commands()

    def classify(self, error: Exception) -> str:
        if isinstance(error, aiogram_errors.TelegramRetryAfter):
            return f"retry_after:{error.retry_after}"
        kinds: list[tuple[type[Exception], str]] = [
            (aiogram_errors.TelegramForbiddenError, "forbidden"),
            (aiogram_errors.TelegramBadRequest, "bad_request"),
            (aiogram_errors.TelegramConflictError, "conflict"),
            (aiogram_errors.TelegramServerError, "server"),
            (aiogram_errors.TelegramUnauthorizedError, "unauthorized"),
            (aiogram_errors.TelegramNetworkError, "timeout"),
        ]
        return next(kind for cls, kind in kinds if isinstance(error, cls))

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        await self.bot.session.close()


class PtbClient:
    name = "ptb"

    def __init__(self, fake: FakeTelegram, token: str | None = None) -> None:
        self.bot = telegram.Bot(
            token or fake.token,
            base_url=f"{fake.url}/bot",
            request=local_request(),
            get_updates_request=local_request(),
        )

    @staticmethod
    def _markup(buttons: Row) -> telegram.InlineKeyboardMarkup | None:
        if not buttons:
            return None
        return telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton(text, callback_data=data) for text, data in buttons]]
        )

    async def send(
        self,
        chat_id: int,
        text: str,
        buttons: Row = (),
        parse_mode: str | None = None,
        wait: float | None = None,
    ) -> int:
        message = await self.bot.send_message(
            chat_id, text, reply_markup=self._markup(buttons), parse_mode=parse_mode, read_timeout=wait
        )
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Row = ()) -> None:
        await self.bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, reply_markup=self._markup(buttons)
        )

    async def edit_markup(self, chat_id: int, message_id: int, buttons: Row) -> None:
        await self.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=self._markup(buttons)
        )

    async def delete(self, chat_id: int, message_id: int) -> None:
        await self.bot.delete_message(chat_id, message_id)

    async def answer(self, callback_id: str, text: str) -> None:
        await self.bot.answer_callback_query(callback_id, text=text, show_alert=False)

    async def send_photo(self, chat_id: int, photo: bytes, caption: str) -> None:
        await self.bot.send_photo(chat_id, photo, caption=caption)

    async def updates(self, offset: int, poll: int, allowed: list[str] | None = None) -> list[Seen]:
        return [
            self._seen(update)
            for update in await self.bot.get_updates(offset=offset, timeout=poll, allowed_updates=allowed)
        ]

    @staticmethod
    def _seen(update: telegram.Update) -> Seen:
        if (message := update.message) is not None:
            media = next((name for name in MEDIA if getattr(message, name)), "unknown")
            return Seen(
                update.update_id,
                "message",
                message.chat.id,
                message.text if message.text is not None else f"<{media}>",
                message_id=message.message_id,
                chat_type=message.chat.type,
            )
        if (query := update.callback_query) is not None:
            assert isinstance(query.message, telegram.Message)
            return Seen(
                update.update_id,
                "callback",
                query.message.chat.id,
                data=str(query.data),
                callback_id=query.id,
                message_id=query.message.message_id,
            )
        return Seen(update.update_id, "my_chat_member" if update.my_chat_member else "other")

    async def set_webhook(self, url: str, secret: str, max_connections: int = 40) -> None:
        await self.bot.set_webhook(url, secret_token=secret, max_connections=max_connections)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook()

    async def webhook_error(self) -> str | None:
        return (await self.bot.get_webhook_info()).last_error_message

    async def set_commands(self, commands: list[tuple[str, str]]) -> None:
        await self.bot.set_my_commands(commands)

    async def get_commands(self) -> list[tuple[str, str]]:
        return [(c.command, c.description) for c in await self.bot.get_my_commands()]

    async def delete_commands(self) -> None:
        await self.bot.delete_my_commands()

    def classify(self, error: Exception) -> str:
        if isinstance(error, telegram.error.RetryAfter):
            wait = error.retry_after
            return f"retry_after:{int(wait.total_seconds()) if not isinstance(wait, int) else wait}"
        kinds: list[tuple[type[Exception], str]] = [
            (telegram.error.Forbidden, "forbidden"),
            (telegram.error.BadRequest, "bad_request"),
            (telegram.error.Conflict, "conflict"),
            (telegram.error.TimedOut, "timeout"),
            (telegram.error.NetworkError, "server"),
            (telegram.error.InvalidToken, "unauthorized"),
        ]
        return next(kind for cls, kind in kinds if isinstance(error, cls))

    async def open(self) -> None:
        await self.bot.initialize()  # without it, shutdown() leaves the HTTP connections open

    async def close(self) -> None:
        await self.bot.shutdown()


async def failure(client: Client, call: Awaitable[Any]) -> tuple[str, str]:
    """The error a call ended with, as (kind, lower-cased message); fails the test if it succeeded.

    PTB rewrites descriptions ("Bad Request: message is too long" -> "Message is too long"), hence lower().
    """
    try:
        await call
    except Exception as error:
        return client.classify(error), str(error).lower()
    raise AssertionError("the call succeeded")


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns when it builds RetryAfter with an int; warnings are errors here.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as simulator:
        yield simulator


@pytest.fixture(params=["aiogram", "ptb"])
async def client(request: pytest.FixtureRequest, fake: FakeTelegram) -> AsyncIterator[Client]:
    made: Client = AiogramClient(fake) if request.param == "aiogram" else PtbClient(fake)
    await made.open()
    yield made
    await made.close()


@pytest.fixture
async def aiogram_client(fake: FakeTelegram) -> AsyncIterator[AiogramClient]:
    made = AiogramClient(fake)
    yield made
    await made.close()


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises what made a bot loop crash, so the test names it


async def echo_bot(client: Client) -> None:
    """A minimal bot: echoes text with two buttons; a tap is answered, edited and followed by a message."""
    offset = 0
    while True:
        for seen in await client.updates(offset, poll=1):
            offset = seen.update_id + 1
            if seen.kind == "message" and seen.text.startswith("silent"):
                continue
            if seen.kind == "message":
                await client.send(seen.chat_id, f"echo: {seen.text}", [("按钮 A", "a"), ("按钮 B", "b")])
            elif seen.kind == "callback" and seen.data == "quiet":
                await client.answer(seen.callback_id, "")
            elif seen.kind == "callback":
                await client.answer(seen.callback_id, f"got {seen.data}")
                with contextlib.suppress(Exception):  # a repeated tap: "message is not modified"
                    await client.edit(seen.chat_id, seen.message_id, f"chose {seen.data}")
                await client.send(seen.chat_id, f"clicked {seen.data}", [("again", "again")])


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """For effects the simulator produces on its own (webhook posts) that no chat waits on."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - nothing announces these effects; look again shortly
            await asyncio.sleep(0.01)


def png(width: int = 4, height: int = 3) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


def text_update(chat_id: int, text: str, message_id: int = 1) -> dict[str, Any]:
    return {
        "message": {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "居民"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "居民"},
            "text": text,
        }
    }


# -- sending through each framework ------------------------------------------------------------


async def test_message_with_inline_keyboard_reaches_the_chat(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    message_id = await client.send(resident.chat_id, "您同意吗？", [("同意", "yes"), ("不同意", "no")])

    [shown] = fake.chat_messages(resident.chat_id)
    assert shown.message_id == message_id
    assert shown.text == "您同意吗？"
    assert shown.buttons == [[("同意", "yes"), ("不同意", "no")]]
    assert resident.last is shown
    call = fake.calls_of("sendMessage")[-1]
    assert call.status == 200
    assert call.params["chat_id"] == resident.chat_id  # decoded to an int whatever the encoding
    assert call.params["reply_markup"]["inline_keyboard"][0][0] == {"text": "同意", "callback_data": "yes"}


async def test_html_is_rendered_and_broken_html_refused(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    await client.send(resident.chat_id, "<b>第 1 题</b> &lt;必答&gt;", parse_mode="HTML")
    assert resident.last.text == "第 1 题 <必答>"
    assert resident.last.source == "<b>第 1 题</b> &lt;必答&gt;"

    kind, message = await failure(client, client.send(resident.chat_id, "收入 <5000", parse_mode="HTML"))
    assert kind == "bad_request" and "can't parse entities" in message
    await client.send(
        resident.chat_id, r"*谢谢* [详情](https://example.org/a\)b) 参与\.", parse_mode="MarkdownV2"
    )
    assert resident.last.text == "谢谢 详情 参与."
    kind, message = await failure(client, client.send(resident.chat_id, "谢谢.", parse_mode="MarkdownV2"))
    assert kind == "bad_request" and "reserved" in message


async def test_photo_upload_is_stored_with_its_caption(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    image = png(6, 5)
    await client.send_photo(resident.chat_id, image, "扫码填写问卷")

    shown = resident.last
    assert shown.photo == image
    assert shown.caption == "扫码填写问卷"
    assert shown.raw["photo"][0]["width"] == 6

    kind, message = await failure(client, client.send_photo(resident.chat_id, b"not an image", "x"))
    assert (kind, message.split()[-1]) == ("bad_request", "image_process_failed")


async def test_edits_apply_in_place_and_unchanged_edits_are_refused(
    fake: FakeTelegram, client: Client
) -> None:
    resident = fake.user()
    message_id = await client.send(resident.chat_id, "问题一", [("是", "y")])

    kind, message = await failure(client, client.edit_markup(resident.chat_id, message_id, [("是", "y")]))
    assert kind == "bad_request" and "message is not modified" in message

    await client.edit_markup(resident.chat_id, message_id, [("否", "n")])
    assert resident.last.buttons == [[("否", "n")]]
    # Like Telegram, an edit that names no keyboard removes it.
    await client.edit(resident.chat_id, message_id, "问题一：已选 否")
    assert (resident.last.text, resident.last.buttons, resident.last.edits) == ("问题一：已选 否", [], 2)
    kind, message = await failure(client, client.edit(resident.chat_id, message_id, "问题一：已选 否"))
    assert "message is not modified" in message

    kind, message = await failure(client, client.edit(resident.chat_id, 999, "x"))
    assert "message to edit not found" in message
    await client.delete(resident.chat_id, message_id)
    assert resident.messages == []
    kind, message = await failure(client, client.delete(resident.chat_id, message_id))
    assert "message to delete not found" in message


async def test_invalid_messages_get_telegrams_400s(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    kind, message = await failure(client, client.send(resident.chat_id, "长" * 4097))
    assert (kind, message.endswith("message is too long")) == ("bad_request", True)
    await client.send(resident.chat_id, "长" * 4096)  # the limit itself is fine

    kind, message = await failure(client, client.send(resident.chat_id, "x", [("按钮", "d" * 65)]))
    assert (kind, message.endswith("button_data_invalid")) == ("bad_request", True)
    kind, message = await failure(client, client.send(resident.chat_id, ""))
    assert (kind, message.endswith("message text is empty")) == ("bad_request", True)
    kind, message = await failure(client, client.send(424242, "nobody here"))
    assert (kind, message.endswith("chat not found")) == ("bad_request", True)
    assert len(resident.messages) == 1


async def test_commands_are_set_read_and_deleted(fake: FakeTelegram, client: Client) -> None:
    await client.set_commands([("start", "开始问卷"), ("help", "帮助")])
    assert await client.get_commands() == [("start", "开始问卷"), ("help", "帮助")]
    await client.delete_commands()
    assert await client.get_commands() == []
    kind, message = await failure(client, client.set_commands([("Bad-Command", "x")]))
    assert (kind, message.endswith("bot_command_invalid")) == ("bad_request", True)


# -- injected failures -------------------------------------------------------------------------


async def test_flood_limit_answers_429_with_retry_after_once(fake: FakeTelegram, client: Client) -> None:
    first, second = fake.user(), fake.user()
    fake.fail_next("sendMessage", 429, retry_after=3, chat_id=first.chat_id)

    await client.send(second.chat_id, "other chats are not affected")
    kind, _message = await failure(client, client.send(first.chat_id, "推送"))
    assert kind == "retry_after:3"
    assert fake.calls_of("sendMessage")[-1].status == 429
    await client.send(first.chat_id, "推送")  # count=1: the retry goes through
    assert [m.text for m in first.messages] == ["推送"]


async def test_rate_limit_refuses_sends_beyond_the_pace(fake: FakeTelegram, client: Client) -> None:
    resident, other = fake.user(), fake.user()
    fake.rate_limit(overall=None, per_chat=0.25)  # one message per 4 s in each chat
    await client.send(resident.chat_id, "第一条")
    kind, _message = await failure(client, client.send(resident.chat_id, "第二条"))
    assert kind in ("retry_after:4", "retry_after:3")
    await client.send(other.chat_id, "别的聊天不受影响")
    assert [m.text for m in resident.messages] == ["第一条"]

    fake.rate_limit(overall=3)
    passed = 0
    for _ in range(10):
        try:
            await client.send(other.chat_id, "群发")
        except Exception as error:
            assert client.classify(error) == "retry_after:1"
            break
        passed += 1
    assert 3 <= passed <= 4  # a burst of one second's worth, give or take a refill meanwhile


async def test_blocked_user_gets_403_and_the_bot_hears_of_it(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    fake.block(resident.user_id)
    kind, message = await failure(client, client.send(resident.chat_id, "问卷提醒"))
    assert kind == "forbidden" and "bot was blocked by the user" in message
    assert resident.messages == []
    [seen] = await client.updates(0, poll=0)
    assert seen.kind == "my_chat_member"


async def test_server_errors_come_from_fail_next(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    fake.fail_next("sendMessage", 502, count=2)
    for _ in range(2):
        kind, _message = await failure(client, client.send(resident.chat_id, "x"))
        assert kind == "server"
    fake.fail_next("answerCallbackQuery", 500, description="Internal Server Error: restart")
    kind, message = await failure(client, client.answer("1", "x"))
    assert kind == "server" and "restart" in message
    await client.send(resident.chat_id, "x")
    assert [call.status for call in fake.calls_of("sendMessage")] == [502, 502, 200]


async def test_slow_answer_times_the_client_out_but_the_message_was_sent(
    fake: FakeTelegram, client: Client
) -> None:
    resident = fake.user()
    fake.set_delay("sendMessage", 0.6)
    kind, _message = await failure(client, client.send(resident.chat_id, "慢", wait=0.2))
    assert kind == "timeout"
    # The classic duplicate: Telegram did deliver it, only the answer was late.
    assert [m.text for m in resident.messages] == ["慢"]
    fake.set_delay("sendMessage", 0)
    await client.send(resident.chat_id, "快", wait=1.0)


async def test_unknown_token_is_unauthorized(fake: FakeTelegram) -> None:
    for wrong in (AiogramClient(fake, "999:WRONG"), PtbClient(fake, "999:WRONG")):
        kind, _message = await failure(wrong, wrong.open() if wrong.name == "ptb" else wrong.get_commands())
        assert kind == "unauthorized"
        await wrong.close()
    assert {call.status for call in fake.calls} == {401}


# -- polling -----------------------------------------------------------------------------------


async def test_polling_sees_text_and_click(
    fake: FakeTelegram, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    resident = fake.user()
    async with running(echo_bot(client)):
        [reply] = await resident.send("你好")
        assert reply.text == "echo: 你好"
        assert reply.button_texts() == ["按钮 A", "按钮 B"]

        click = await resident.click("按钮 A")
        assert click.answer_text == "got a" and not click.show_alert
        assert [m.text for m in click.messages] == ["clicked a"]
        assert (reply.text, reply.edits, reply.buttons) == ("chose a", 1, [])

        # A substring finds the button when it is unambiguous; data= taps an old, already edited one.
        assert (await resident.click("gai")).answer_text == "got again"
        forged = await resident.click(data="b", message=reply)
        assert forged.answer_text == "got b"
        # expect=0: done once the tap is answered, without waiting out a quiet period.
        monkeypatch.setattr(simusers, "QUIET_SECONDS", 5.0)
        started = time.monotonic()
        silent = await resident.click(data="quiet", expect=0)
        assert (silent.answer_text, silent.messages) == ("", [])
        assert time.monotonic() - started < 2.5


async def test_media_group_and_commands_parse_in_the_framework(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    async with running(echo_bot(client)):
        assert [m.text for m in await resident.send_sticker()] == ["echo: <sticker>"]
        assert [m.text for m in await resident.send_photo()] == ["echo: <photo>"]
        assert [m.text for m in await resident.send_voice()] == ["echo: <voice>"]
        assert [m.text for m in await resident.send_location()] == ["echo: <location>"]
        assert [m.text for m in await resident.send_contact()] == ["echo: <contact>"]
        [in_group] = await resident.send_in_group("大家好")
        assert (in_group.chat_id, in_group.text) == (-1001234, "echo: 大家好")
        assert len(resident.messages) == 5  # the group reply is not in the private chat
    updates = [call for call in fake.calls_of("sendMessage") if call.params["chat_id"] == -1001234]
    assert len(updates) == 1


async def test_aiogram_dispatcher_polls_and_handles_commands(fake: FakeTelegram) -> None:
    bot = aiogram_bot(fake)
    dispatcher = Dispatcher()

    @dispatcher.message(F.text == "/start")
    async def start(message: Message) -> None:
        await message.answer("欢迎", reply_markup=AiogramClient._markup([("开始", "go")]))

    @dispatcher.callback_query()
    async def tapped(query: CallbackQuery) -> None:
        await query.answer("好的", show_alert=True)
        assert isinstance(query.message, Message)
        await query.message.answer(f"第 1 题 ({query.data})")

    resident = fake.user()
    async with running(dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1)):
        assert [m.text for m in await resident.send("/start")] == ["欢迎"]
        click = await resident.click("开始")
        assert (click.answer_text, click.show_alert) == ("好的", True)
        assert [m.text for m in click.messages] == ["第 1 题 (go)"]
        await dispatcher.stop_polling()


async def test_ptb_application_polls_and_handles_commands(fake: FakeTelegram) -> None:
    application: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(f"{fake.url}/bot")
        .request(local_request())
        .get_updates_request(local_request())
        .build()
    )

    async def start(update: telegram.Update, _context: Any) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("欢迎", reply_markup=PtbClient._markup([("开始", "go")]))

    async def tapped(update: telegram.Update, _context: Any) -> None:
        query = update.callback_query
        assert query is not None and isinstance(query.message, telegram.Message)
        await query.answer("好的")
        await query.message.reply_text(f"第 1 题 ({query.data})")

    # CommandHandler sees a command only through its bot_command entity.
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(tapped))
    application.add_handler(MessageHandler(ptb_filters.TEXT, start))
    resident = fake.user()
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(timeout=1, poll_interval=0)
        assert [m.text for m in await resident.send("/start abc")] == ["欢迎"]
        click = await resident.click("开始")
        assert click.answer_text == "好的" and [m.text for m in click.messages] == ["第 1 题 (go)"]
        await application.updater.stop()
        await application.stop()
    # PTB drops a webhook before polling; that must not have failed.
    assert [call.status for call in fake.calls_of("deleteWebhook")] == [200]


async def test_long_poll_waits_for_updates_and_wakes_at_once(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    started = time.monotonic()
    assert await aiogram_client.updates(0, poll=1) == []
    assert time.monotonic() - started >= 0.9

    waiting = asyncio.create_task(aiogram_client.updates(0, poll=5))
    await eventually(lambda: fake.waiting_polls == 1)
    started = time.monotonic()
    update_id = await fake.push_update(text_update(1, "hi"))
    [seen] = await waiting
    assert seen.update_id == update_id and time.monotonic() - started < 1.0


async def test_a_second_poller_ends_the_first_with_409(fake: FakeTelegram) -> None:
    first, second = AiogramClient(fake), PtbClient(fake)
    await second.open()
    try:
        waiting = asyncio.create_task(failure(first, first.updates(0, poll=5)))
        await eventually(lambda: fake.waiting_polls == 1)
        assert await second.updates(0, poll=0) == []
        kind, message = await waiting
        assert kind == "conflict" and "terminated by other getupdates request" in message
    finally:
        await first.close()
        await second.close()


async def test_offset_confirms_and_redeliver_repeats_the_same_update(
    fake: FakeTelegram, client: Client
) -> None:
    first = await fake.push_update(text_update(7, "一"))
    second = await fake.push_update(text_update(7, "二"))
    assert [seen.update_id for seen in await client.updates(0, poll=0)] == [first, second]
    assert await client.updates(second + 1, poll=0) == []
    assert fake.pending_updates() == 0

    await fake.redeliver(first)
    [again] = await client.updates(second + 1, poll=0)
    assert (again.update_id, again.text) == (first, "一")
    assert await client.updates(first + 1, poll=0) == []
    assert fake.pending_updates() == 0


async def test_allowed_updates_filter_what_polling_delivers(fake: FakeTelegram, client: Client) -> None:
    resident = fake.user()
    fake.block(resident.user_id)  # queues my_chat_member, which the bot did not ask for
    wanted = await fake.push_update(text_update(resident.chat_id, "要"))
    assert [seen.update_id for seen in await client.updates(0, 0, allowed=["message"])] == [wanted]
    await client.updates(wanted + 1, poll=0)
    assert fake.pending_updates() == 0


async def test_updates_keep_their_numbering() -> None:
    async with FakeTelegram(first_update_id=500) as other:
        assert await other.push_update(text_update(1, "a")) == 500
        assert await other.push_update({"update_id": 900, **text_update(1, "b")}) == 900
        assert await other.push_update(text_update(1, "c")) == 901


# -- the resident's side --------------------------------------------------------------------------


async def test_send_expect_zero_raises_when_the_bot_replies(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    resident = fake.user()
    async with running(echo_bot(aiogram_client)):
        assert await resident.send("silent please", expect=0) == []
        with pytest.raises(AssertionError, match="expected exactly 0"):
            await resident.send("你好", expect=0)


async def test_send_times_out_naming_what_arrived(fake: FakeTelegram) -> None:
    resident = fake.user()
    with pytest.raises(AssertionError, match=r"got 0: \[\][\s\S]*still pending"):
        await resident.send("有人吗", timeout=0.2)


async def test_click_finds_buttons_and_explains_when_it_cannot(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    resident = fake.user()
    await aiogram_client.send(resident.chat_id, "旧", [("很满意", "5"), ("满意", "4")])
    await aiogram_client.send(resident.chat_id, "新", [("是", "y")])
    with pytest.raises(AssertionError, match=r"no button '不存在'.*'是'"):
        await resident.click("不存在")
    with pytest.raises(AssertionError, match="ambiguous"):
        await resident.click("满", message=resident.messages[0])
    async with running(echo_bot(aiogram_client)):
        # An exact label wins over labels merely containing it; older messages are searched too.
        click = await resident.click("满意")
        assert click.answer_text == "got 4"


async def test_double_click_sends_two_callbacks_and_counts_replies(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    resident = fake.user()
    await aiogram_client.send(resident.chat_id, "选一个", [("甲", "a")])
    async with running(echo_bot(aiogram_client)):
        # The echo bot is not idempotent: two taps, two follow-ups, so expect=1 must fail.
        with pytest.raises(AssertionError, match="expected exactly 1"):
            await resident.double_click("甲")
    first, second = [call.params["callback_query_id"] for call in fake.calls_of("answerCallbackQuery")]
    assert first != second
    kind, message = await failure(aiogram_client, aiogram_client.answer(first, "again"))
    assert kind == "bad_request" and "query is too old" in message


async def test_many_residents_at_once(fake: FakeTelegram, aiogram_client: AiogramClient) -> None:
    residents = [fake.user() for _ in range(50)]
    assert residents[0].user_id == 10_001
    async with running(echo_bot(aiogram_client)):
        replies = await asyncio.gather(*(r.send(f"第{r.user_id}号") for r in residents))
    for resident, [reply] in zip(residents, replies, strict=True):
        assert reply.chat_id == resident.chat_id and reply.text == f"echo: 第{resident.user_id}号"


# -- webhook ---------------------------------------------------------------------------------------


class Receiver:
    """A bot's webhook endpoint: records what arrives and answers with the statuses it is told to."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.statuses = list(statuses)
        self.posts: list[tuple[dict[str, Any], str | None]] = []
        self.reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.in_flight = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            update = await request.json()
            self.posts.append((update, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
            if self.gate is not None:
                await self.gate.wait()
            if self.statuses:
                return web.Response(status=self.statuses.pop(0))
            return web.json_response(self.reply(update) if self.reply else {})
        finally:
            self.in_flight -= 1

    def delivered(self) -> set[int]:
        return {update["update_id"] for update, _ in self.posts}

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
        assert self._runner is not None
        await self._runner.cleanup()


async def test_webhook_posts_with_secret_retries_and_loses_nothing(
    fake: FakeTelegram, client: Client
) -> None:
    async with Receiver(statuses=[500]) as receiver:
        await client.set_webhook(receiver.url, "s3cret-token_1")
        ids = [await fake.push_update(text_update(5, f"消息{i}")) for i in range(3)]
        await eventually(lambda: receiver.delivered() == set(ids) and fake.pending_updates() == 0)

        assert {secret for _, secret in receiver.posts} == {"s3cret-token_1"}
        assert receiver.posts[0][0]["message"]["text"] == "消息0"
        assert [attempt.status for attempt in fake.webhook_attempts].count(500) == 1
        assert len(receiver.posts) == 4  # the refused update came again
        assert await client.webhook_error() == "Wrong response from the webhook: 500"

        kind, message = await failure(client, client.updates(0, poll=0))
        assert kind == "conflict" and "webhook is active" in message
        await client.delete_webhook()
        assert await client.updates(0, poll=0) == []


async def test_webhook_never_exceeds_max_connections(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    async with Receiver() as receiver:
        receiver.gate = asyncio.Event()
        await aiogram_client.set_webhook(receiver.url, "secret", max_connections=2)
        ids = [await fake.push_update(text_update(5, str(i))) for i in range(5)]
        await eventually(lambda: receiver.in_flight == 2)
        await asyncio.sleep(0.1)  # room for a third POST, which must not come
        assert receiver.in_flight == 2
        receiver.gate.set()
        await eventually(lambda: receiver.delivered() == set(ids))
        assert receiver.peak == 2


async def test_undeliverable_updates_wait_for_polling(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    async with Receiver() as receiver:
        dead_url = receiver.url
    await aiogram_client.set_webhook(dead_url, "secret")
    update_id = await fake.push_update(text_update(5, "还在吗"))
    await eventually(lambda: any(attempt.status is None for attempt in fake.webhook_attempts))
    assert fake.pending_updates() == 1
    await aiogram_client.delete_webhook()
    [seen] = await aiogram_client.updates(0, poll=0)
    assert (seen.update_id, seen.text) == (update_id, "还在吗")


async def test_resident_talks_to_a_webhook_bot_that_replies_in_the_response(
    fake: FakeTelegram, aiogram_client: AiogramClient
) -> None:
    resident = fake.user()
    async with Receiver() as receiver:
        receiver.reply = lambda update: {
            "method": "sendMessage",
            "chat_id": update["message"]["chat"]["id"],
            "text": f"收到：{update['message']['text']}",
        }
        await aiogram_client.set_webhook(receiver.url, "secret")
        [reply] = await resident.send("你好")
        assert reply.text == "收到：你好"


async def test_aiogram_webhook_handler_checks_the_secret_and_replies_in_the_response(
    fake: FakeTelegram,
) -> None:
    bot = aiogram_bot(fake)
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"收到：{message.text}")  # not awaited: aiogram puts it in the webhook reply

    app = web.Application()
    handler = SimpleRequestHandler(dispatcher, bot, secret_token="right-secret", handle_in_background=False)
    handler.register(app, path="/hook")
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    resident = fake.user()
    try:
        await bot.set_webhook(url, secret_token="wrong-secret")
        await fake.push_update(text_update(resident.chat_id, "一"))
        await eventually(lambda: any(attempt.status == 401 for attempt in fake.webhook_attempts))
        assert resident.messages == []

        await bot.set_webhook(url, secret_token="right-secret")
        await resident.wait_for(lambda: len(resident.messages) == 1)  # the refused update, now taken
        assert resident.last.text == "收到：一"
        assert [m.text for m in await resident.send("二")] == ["收到：二"]
        assert fake.pending_updates() == 0
    finally:
        await bot.session.close()
        await runner.cleanup()


async def test_webhook_only_goes_to_localhost(fake: FakeTelegram, client: Client) -> None:
    kind, message = await failure(client, client.set_webhook("https://example.com/hook", "secret"))
    assert kind == "bad_request" and "bad webhook" in message


# -- encodings -------------------------------------------------------------------------------------


async def test_json_form_and_multipart_bodies_decode_alike(fake: FakeTelegram) -> None:
    resident = fake.user()
    markup = {"inline_keyboard": [[{"text": "是", "callback_data": "1"}]]}
    endpoint = f"{fake.url}/bot{fake.token}/sendMessage"
    form_fields = {"chat_id": str(resident.chat_id), "text": "123", "reply_markup": json.dumps(markup)}
    multipart = aiohttp.FormData(form_fields)
    multipart.add_field("unused_file", b"\x00", filename="x.bin")  # forces multipart/form-data
    async with aiohttp.ClientSession() as http:
        for request in (
            http.post(endpoint, json={"chat_id": resident.chat_id, "text": "123", "reply_markup": markup}),
            http.post(endpoint, data=form_fields),
            http.post(endpoint, data=multipart),
            http.get(endpoint, params=form_fields),
        ):
            async with request as response:
                body = await response.json()
                assert body["ok"] and body["result"]["text"] == "123"
        async with http.post(f"{fake.url}/bot{fake.token}/noSuchMethod") as response:
            assert (response.status, await response.json()) == (
                404,
                {"ok": False, "error_code": 404, "description": "Not Found"},
            )
    for call in fake.calls_of("sendMessage"):
        assert (call.params["chat_id"], call.params["text"], call.params["reply_markup"]) == (
            resident.chat_id,
            "123",  # text stays a string even though it looks like a number
            markup,
        )
    assert [m.buttons for m in resident.messages] == [[[("是", "1")]]] * 4
