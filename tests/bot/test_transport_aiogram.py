"""The aiogram transport's keyboards: built once for a set of buttons, with what the resident sees."""

from __future__ import annotations

from bot.messages import Button
from bot.transports.aiogram import KEYBOARD_CACHE, keyboard


def rows(*labels: str) -> tuple[tuple[Button, ...], ...]:
    return tuple((Button(label, f"a:7:q1:{index}"),) for index, label in enumerate(labels))


def test_residents_at_one_question_share_one_keyboard() -> None:
    first = keyboard(rows("同意", "不同意"))
    assert keyboard(rows("同意", "不同意")) is first  # equal buttons, built by another update
    shown = [[(b.text, b.callback_data) for b in row] for row in first.inline_keyboard]
    assert shown == [[("同意", "a:7:q1:0")], [("不同意", "a:7:q1:1")]]
    assert keyboard(rows("同意", "反对")) is not first


def test_the_keyboards_kept_are_bounded() -> None:
    for index in range(KEYBOARD_CACHE + 10):
        keyboard(rows(f"选项 {index}"))
    assert keyboard.cache_info().currsize == KEYBOARD_CACHE
