"""Incoming, Reply and Button: the only types that transports and the dialog engine share."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What a resident sent; anything that is not text or a button tap is ``OTHER``."""

    TEXT = "text"
    CALLBACK = "callback"
    OTHER = "other"  # sticker, photo, voice, location, contact, document ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """One Telegram update, reduced to what the engine needs."""

    update_id: int
    user_id: int
    chat_id: int
    kind: Kind
    chat_type: str = "private"
    text: str = ""
    callback_data: str = ""
    callback_id: str = ""
    # The message that carried the tapped button; the engine edits it to show the choice.
    message_id: int | None = None
    # For OTHER: "sticker", "photo", "voice", "location", "contact", ...
    media: str = ""
    first_name: str = ""
    language_code: str = ""


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button; ``data`` must fit Telegram's 64-byte callback limit."""

    text: str
    data: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One thing to do in a chat, in order.

    - ``send``: a new message (``text`` with optional ``buttons``);
    - ``edit``: replace the text and buttons of ``message_id``;
    - ``answer_callback``: close the spinner of ``callback_id``, optionally with a toast ``text``;
    - ``photo``: a new message with the PNG ``image`` and ``text`` as its caption (at most 1024 characters).
    """

    action: str
    chat_id: int = 0
    text: str = ""
    buttons: tuple[tuple[Button, ...], ...] = field(default_factory=tuple)
    message_id: int | None = None
    callback_id: str = ""
    image: bytes = b""

    @staticmethod
    def send(chat_id: int, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> Reply:
        return Reply("send", chat_id=chat_id, text=text, buttons=buttons)

    @staticmethod
    def edit(chat_id: int, message_id: int, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> Reply:
        return Reply("edit", chat_id=chat_id, text=text, buttons=buttons, message_id=message_id)

    @staticmethod
    def answer_callback(callback_id: str, text: str = "") -> Reply:
        return Reply("answer_callback", callback_id=callback_id, text=text)

    @staticmethod
    def photo(
        chat_id: int, image: bytes, caption: str = "", buttons: tuple[tuple[Button, ...], ...] = ()
    ) -> Reply:
        return Reply("photo", chat_id=chat_id, text=caption, buttons=buttons, image=image)
