"""Reading typed answers: numbers, phone numbers, consent words and lists of options, forgivingly."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.questionnaire import AnswerValue, Option, Question, match_option, normalise

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CHINESE_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_LIST_SEPARATORS = re.compile(r"[\s,，、;；/和及]+")

YES_WORDS = ("愿意", "可以", "好的", "好", "行", "同意", "是", "yes", "ok")
NO_WORDS = ("不愿意", "不用", "不要", "不行", "不同意", "算了", "否", "no")
DONE_WORDS = ("完成", "好了", "选好了", "就这些", "确定", "done")
SKIP_WORDS = ("跳过", "不想回答", "不回答", "skip")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A typed answer read successfully (value), or the reason it could not be (problem)."""

    value: AnswerValue = None
    problem: str = ""


def _chinese_number(text: str) -> int | None:
    """一 .. 九十九 and 两, as elderly residents may type a household size."""
    if not text or any(ch not in _CHINESE_DIGITS and ch != "十" for ch in text):
        return None
    if "十" not in text:
        return _CHINESE_DIGITS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1:
        return None
    return (_CHINESE_DIGITS[tens] if tens else 1) * 10 + (_CHINESE_DIGITS[ones] if ones else 0)


def parse_number(text: str) -> float | None:
    folded = unicodedata.normalize("NFKC", text).strip()
    numbers = _NUMBER.findall(folded.replace(",", ""))
    if len(numbers) == 1:
        return float(numbers[0])
    if not numbers:
        core = re.sub(r"[个口人岁年次户间套亩平米元块]+$", "", folded)
        value = _chinese_number(core)
        return float(value) if value is not None else None
    return None


def parse_phone(text: str) -> str | None:
    """A mainland mobile or landline number, digits only; None when it is not one."""
    digits = re.sub(r"[\s\-()（）]", "", unicodedata.normalize("NFKC", text))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if _MOBILE.match(digits) or _LANDLINE.match(digits):
        return digits
    return None


def says(text: str, words: tuple[str, ...]) -> bool:
    typed = normalise(text)
    return any(typed == normalise(w) or typed.startswith(normalise(w)) for w in words)


def says_no(text: str) -> bool:
    return says(text, NO_WORDS)


def says_yes(text: str) -> bool:
    return not says_no(text) and says(text, YES_WORDS)


def parse_options(question: Question, text: str) -> list[Option] | None:
    """Several options typed in one message ("噪音、扬尘" or "1 3"); None if any part is unclear."""
    whole = match_option(question, text)
    if whole is not None:
        return [whole]
    parts = [p for p in _LIST_SEPARATORS.split(unicodedata.normalize("NFKC", text)) if p]
    chosen: list[Option] = []
    for part in parts:
        option = match_option(question, part)
        if option is None:
            return None
        if option not in chosen:
            chosen.append(option)
    return chosen or None
