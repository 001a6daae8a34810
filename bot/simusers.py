"""Simulated residents for the local Bot API: what each chat shows, and a phone that sends and taps."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.fakeapi import FakeTelegram

# How long ``expect=0`` listens for a reply before concluding that none is coming.
QUIET_SECONDS = 0.3

Buttons = list[list[tuple[str, str]]]


@dataclass(eq=False)
class BotMessage:
    """One message the bot sent, as the resident's phone shows it now (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    buttons: Buttons = field(default_factory=list)
    photo: bytes | None = None
    caption: str | None = None
    edits: int = 0
    deleted: bool = False
    # The text or caption exactly as the bot sent it, markup included, and how it asked to parse it.
    source: str = ""
    parse_mode: str | None = None
    # The Message object as the Bot API returns it; a callback query carries this.
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def button_texts(self) -> list[str]:
        return [text for row in self.buttons for text, _ in row]

    def button_data(self, text: str) -> str:
        """The callback_data of the button labelled exactly ``text``."""
        for row in self.buttons:
            for label, data in row:
                if label == text:
                    return data
        raise AssertionError(f"message {self.message_id} has no button {text!r}: {self.button_texts()}")


@dataclass(frozen=True, slots=True)
class Click:
    """What a tap produced: the toast (answerCallbackQuery) and the new messages that followed it."""

    answer_text: str
    show_alert: bool
    messages: list[BotMessage]


@dataclass(slots=True)
class CallbackState:
    """A callback query the simulator handed out, and whether the bot has answered it yet."""

    callback_id: str
    chat_id: int
    answered: bool = False
    text: str = ""
    show_alert: bool = False


class ChatLog:
    """One chat: the bot's messages in order, the resident's message ids, and who waits for what.

    Waiters are per chat and re-checked only when this chat changes, so thousands of residents
    waiting at once cost nothing while nothing happens to them.
    """

    def __init__(self, chat: dict[str, Any]) -> None:
        self.chat = chat
        self.chat_id: int = chat["id"]
        # Every message the bot ever sent here, deleted ones included, so counts only grow.
        self.history: list[BotMessage] = []
        self.by_id: dict[int, BotMessage] = {}
        self.user_message_ids: set[int] = set()
        self._message_ids = itertools.count(1)
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    @property
    def messages(self) -> list[BotMessage]:
        return [message for message in self.history if not message.deleted]

    def next_message_id(self) -> int:
        return next(self._message_ids)

    def add(self, message: BotMessage) -> None:
        self.history.append(message)
        self.by_id[message.message_id] = message
        self.changed()

    def changed(self) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """True as soon as ``predicate()`` holds after a change in this chat; False after ``seconds``."""
        if predicate():
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(waiter)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> dict[str, Any]:
    """Telegram marks a leading /command as an entity; PTB's CommandHandler only sees commands by it."""
    if not text.startswith("/") or len(text) < 2:
        return {}
    command = text.split(maxsplit=1)[0]
    return {"entities": [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]}


class SimUser:
    """A resident's phone: sends messages and taps buttons, then waits for the bot's answer in its chat."""

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        first_name: str = "居民",
        language_code: str = "zh-hans",
        username: str | None = None,
    ) -> None:
        self.fake = fake
        self.user_id = user_id
        self.chat_id = user_id  # a private chat's id is the user's id
        self.first_name = first_name
        self.language_code = language_code
        self.username = username
        chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            chat["username"] = username
        self.log = fake.open_chat(chat)

    # -- what the phone shows -------------------------------------------------------------

    @property
    def user_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            user["username"] = self.username
        return user

    @property
    def messages(self) -> list[BotMessage]:
        return self.log.messages

    @property
    def last(self) -> BotMessage:
        messages = self.log.messages
        if not messages:
            raise AssertionError(f"the bot has sent nothing to chat {self.chat_id}")
        return messages[-1]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds after something changed in this chat (an edit, say)."""
        if not await self.log.wait_for(predicate, timeout):
            raise AssertionError(f"chat {self.chat_id}: condition still false after {timeout}s")

    # -- sending --------------------------------------------------------------------------

    async def send(self, text: str, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        return await self._post(
            self.log, {"text": text, **_command_entities(text)}, expect, timeout, repr(text)
        )

    async def send_sticker(self, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        sticker = {
            **self._file("sticker"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }
        return await self._post(self.log, {"sticker": sticker}, expect, timeout, "a sticker")

    async def send_photo(self, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        sizes = [{**self._file("photo"), "width": 90, "height": 90, "file_size": 1024}]
        return await self._post(self.log, {"photo": sizes}, expect, timeout, "a photo")

    async def send_voice(self, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        voice = {**self._file("voice"), "duration": 3, "mime_type": "audio/ogg", "file_size": 4096}
        return await self._post(self.log, {"voice": voice}, expect, timeout, "a voice message")

    async def send_location(self, *, expect: int = 1, timeout: float = 10.0) -> list[BotMessage]:  # noqa: ASYNC109
        location = {"latitude": 39.9042, "longitude": 116.4074}
        return await self._post(self.log, {"location": location}, expect, timeout, "a location")

    async def send_contact(
        self,
        phone: str = "13800138000",
        *,
        expect: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[BotMessage]:
        contact = {"phone_number": phone, "first_name": self.first_name, "user_id": self.user_id}
        return await self._post(self.log, {"contact": contact}, expect, timeout, "a contact")

    async def send_in_group(
        self,
        text: str,
        group_id: int = -1001234,
        *,
        expect: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[BotMessage]:
        """Say ``text`` in a group the bot is in; returns what the bot then sent to that group."""
        group = self.fake.open_chat({"id": group_id, "type": "supergroup", "title": f"群 {group_id}"})
        content = {"text": text, **_command_entities(text)}
        return await self._post(group, content, expect, timeout, f"{text!r} in group {group_id}")

    # -- tapping --------------------------------------------------------------------------

    async def click(
        self,
        button: str | None = None,
        *,
        data: str | None = None,
        message: BotMessage | None = None,
        expect: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Click:
        target, callback_data = self._resolve_button(button, data, message)
        log = self.fake.chat_log(target.chat_id)
        start = len(log.history)
        callback = await self._queue_callback(target, callback_data)
        messages = await self._collect(
            log,
            start,
            expect,
            timeout,
            f"tapping {button or data!r}",
            ready=lambda: callback.answered,
            callbacks=[callback],
        )
        return Click(callback.text, callback.show_alert, messages)

    async def double_click(self, button: str, *, expect: int = 1, timeout: float = 10.0) -> list[Click]:  # noqa: ASYNC109
        """Two taps on the same button before the bot can react; ``expect`` counts messages for both.

        The first Click carries all new messages, the second none. Since the point is to catch a bot
        that answers twice, this also listens a quiet moment for messages beyond ``expect``.
        """
        target, callback_data = self._resolve_button(button, None, None)
        log = self.fake.chat_log(target.chat_id)
        start = len(log.history)
        first = await self._queue_callback(target, callback_data)
        second = await self._queue_callback(target, callback_data)
        messages = await self._collect(
            log,
            start,
            expect,
            timeout,
            f"double-tapping {button!r}",
            ready=lambda: first.answered and second.answered,
            callbacks=[first, second],
            strict=True,
        )
        return [Click(first.text, first.show_alert, messages), Click(second.text, second.show_alert, [])]

    # -- inside ---------------------------------------------------------------------------

    def _file(self, kind: str) -> dict[str, Any]:
        serial = self.fake.next_serial()
        return {"file_id": f"{kind}-{self.user_id}-{serial}", "file_unique_id": f"u{kind}{serial}"}

    async def _post(
        self,
        log: ChatLog,
        content: dict[str, Any],
        expect: int,
        seconds: float,
        what: str,
    ) -> list[BotMessage]:
        start = len(log.history)
        message_id = log.next_message_id()
        log.user_message_ids.add(message_id)
        message = {
            "message_id": message_id,
            "from": self.user_dict,
            "chat": log.chat,
            "date": int(time.time()),
            **content,
        }
        await self.fake.push_update({"message": message})
        return await self._collect(log, start, expect, seconds, f"sending {what}")

    async def _queue_callback(self, target: BotMessage, data: str) -> CallbackState:
        callback = self.fake.new_callback(target.chat_id)
        query = {
            "id": callback.callback_id,
            "from": self.user_dict,
            "message": target.raw,
            # Stable per chat, as Telegram's is; nothing in the project should rely on its form.
            "chat_instance": str((target.chat_id * 2_654_435_761) % (1 << 62)),
            "data": data,
        }
        await self.fake.push_update({"callback_query": query})
        return callback

    async def _collect(
        self,
        log: ChatLog,
        start: int,
        expect: int,
        seconds: float,
        doing: str,
        *,
        ready: Callable[[], bool] = lambda: True,
        callbacks: list[CallbackState] | None = None,
        strict: bool = False,
    ) -> list[BotMessage]:
        def arrived() -> int:
            return len(log.history) - start

        if not await log.wait_for(lambda: ready() and arrived() >= expect, seconds):
            raise AssertionError(self._explain(log, start, expect, seconds, doing, callbacks or []))
        # Proving that nothing more comes takes a quiet moment: only a silent send and a double tap pay
        # for it. A tap is over once answered (the project answers last), so extras must be there by then.
        exact = expect == 0 or strict
        extra = exact and arrived() > expect
        if exact and not extra and (strict or not callbacks):
            extra = await log.wait_for(lambda: arrived() > expect, QUIET_SECONDS)
        if extra:
            texts = [message.text or message.caption for message in log.history[start:]]
            raise AssertionError(
                f"chat {log.chat_id}: after {doing} expected exactly {expect} new bot message(s), got {texts}"
            )
        return log.history[start:]

    def _explain(
        self,
        log: ChatLog,
        start: int,
        expect: int,
        seconds: float,
        doing: str,
        callbacks: list[CallbackState],
    ) -> str:
        got = [message.text or message.caption for message in log.history[start:]]
        lines = [
            f"chat {log.chat_id}: after {doing} expected {expect} new bot message(s) within {seconds}s, "
            f"got {len(got)}: {got}"
        ]
        for callback in callbacks:
            if not callback.answered:
                lines.append(f"callback {callback.callback_id} was never answered (answerCallbackQuery)")
        if pending := self.fake.pending_updates():
            lines.append(f"{pending} update(s) still pending: is the bot polling or its webhook up?")
        failed = [
            f"{call.method} -> {call.status}"
            for call in self.fake.calls
            if call.status != 200 and call.params.get("chat_id") == log.chat_id
        ]
        if failed:
            lines.append(f"failed calls for this chat: {failed[-5:]}")
        return "\n".join(lines)

    def _resolve_button(
        self, button: str | None, data: str | None, message: BotMessage | None
    ) -> tuple[BotMessage, str]:
        if data is not None:
            target = message if message is not None else self.last
            return target, data
        if button is None:
            raise TypeError("click() needs a button text or data=")
        candidates = [message] if message is not None else list(reversed(self.log.messages))
        for candidate in candidates:
            found = _match_button(candidate, button)
            if found is not None:
                return candidate, found
        on_screen = [(m.message_id, m.button_texts()) for m in candidates if m.buttons][:5]
        raise AssertionError(f"no button {button!r} in chat {self.chat_id}; buttons shown: {on_screen}")


def _match_button(message: BotMessage, label: str) -> str | None:
    """callback_data of the button labelled ``label`` (or uniquely containing it), None if absent."""
    buttons = [(text, data) for row in message.buttons for text, data in row]
    exact = [(text, data) for text, data in buttons if text == label]
    matches = exact or [(text, data) for text, data in buttons if label in text]
    if not matches:
        return None
    if len({data for _, data in matches}) > 1:
        raise AssertionError(f"button {label!r} is ambiguous in message {message.message_id}: {matches}")
    text, data = matches[0]
    if not data:
        raise AssertionError(f"button {text!r} opens a link; tapping it sends no callback")
    return data
