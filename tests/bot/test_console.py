"""The terminal transport: `minyi survey preview` runs the real dialog in a terminal."""

from __future__ import annotations

from bot import texts
from bot.transports.console import preview
from tests.conftest import CONTRACT_SURVEY


async def test_preview_answers_the_questionnaire_with_numbers_and_words() -> None:
    source = CONTRACT_SURVEY.read_text(encoding="utf-8")
    # agree, 附近居民 by number, back, the same by name, scale 4, 支持, a stray word at a multiple choice,
    # tick 扬尘 and finish, household 3, skip the suggestion, no phone, submit.
    answers = ["1", "3", "/back", "附近居民", "4", "支持", "随便", "2", "4", "3", "跳过", "2", "2", "/quit"]
    typed = iter(answers)
    shown: list[str] = []

    def read() -> str:
        line = next(typed)
        shown.append(f"> {line}")
        return line

    assert await preview(source, read=read, write=shown.append) == 0
    screen = "\n".join(shown)
    assert "[1] 同意" in screen and "[3] 不同意" in screen
    assert "（第 1/" in screen and "您和工程是什么关系" in screen
    assert texts.FIRST_QUESTION not in screen
    assert texts.REASK_MULTI in screen and "☑ 扬尘" in screen
    assert texts.SUBMITTED.split("\n", 1)[0] in screen


async def test_preview_ends_quietly_at_end_of_input() -> None:
    source = CONTRACT_SURVEY.read_text(encoding="utf-8")

    def read() -> str:
        raise EOFError

    shown: list[str] = []
    assert await preview(source, read=read, write=shown.append) == 0
    assert any("测试工程意见调查" in line for line in shown)
