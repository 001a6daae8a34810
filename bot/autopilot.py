"""Simulated residents who answer whatever the bot asks, for the demo and the benchmarks."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from bot import callbacks as cb
from bot import texts
from bot.simusers import BotMessage, SimUser

GRIEVANCES = (
    "补偿太低了，一平才给3800，周边二手房都要一万二，这让我们怎么买得起房子？",
    "晚上十一点还在施工，噪音太大，孩子没法睡觉，老人心脏也受不了。",
    "安置房到底建在哪里？过渡费一个月才800，租个房子都不够。",
    "俺家的店开了二十年，拆了以后生意咋办？没人跟俺说过补多少。",
    "渣土车天天从小学门口过，开得飞快，太危险了！",
    "征收公告贴出来才三天就让签字，手续全不全我们都不知道。",
    "村里的补偿款分配账目一直不公开，村干部说了算，大家意见很大。",
    "路拓宽了是好事，但是封路以后老人去医院要绕很远，希望留个临时通道。",
    "房子后墙已经开裂了，打桩震的，找谁都不管。",
    "希望评估的时候请第三方来，不要自己人评自己人。",
    "我们支持修路，就是补偿标准要公开透明，同样的房子不能补得不一样。",
    "祖坟在红线里，迁坟要有个说法，要按风俗来。",
    "再不给个说法，我们几十户就一起去堵路！",
    "村里已经在建群串联了，说每户出一个人去市里上访。",
)
SUGGESTIONS = (
    "多开几次居民座谈会，把方案讲清楚。",
    "施工时间晚上十点以后停下来。",
    "安置房能不能就近安排？",
    "没有别的意见，早点修好就行。",
)


@dataclass
class Outcome:
    """How one simulated resident's visit ended."""

    user_id: int
    result: str = "abandoned"  # "submitted", "declined", "abandoned"
    receipt: str = ""
    steps: int = 0
    misbehaved: int = 0


def _prefix(data: str) -> str:
    return data.split(cb.SEPARATOR, 1)[0]


def _buttons(message: BotMessage, action: str) -> list[tuple[str, str]]:
    return [(text, data) for row in message.buttons for text, data in row if _prefix(data) == action]


# Generous: on a busy machine a reply can take seconds, and a simulated resident waits as a person would.
PATIENCE = 30.0


async def answer_survey(
    user: SimUser,
    start: str,
    rng: random.Random,
    *,
    decline: bool = False,
    abandon_after: int | None = None,
    misbehave: bool = False,
    think: float = 0.0,
    max_steps: int = 80,
) -> Outcome:
    """Answer the questionnaire from `start` (a "/start …" command or a typed code) to the receipt.

    A misbehaving resident sends stickers, taps stale buttons, types where a button is expected and uses
    /back — the bot must take all of it in its stride.
    """
    outcome = Outcome(user.user_id)
    message = (await user.send(start, timeout=PATIENCE))[-1]
    answered_buttons: list[str] = []
    for step in range(max_steps):
        outcome.steps = step
        if think:
            await asyncio.sleep(rng.uniform(0, think))
        if abandon_after is not None and step >= abandon_after:
            return outcome
        if texts.SUBMITTED.split("\n", 1)[0] in message.text:
            outcome.result = "submitted"
            outcome.receipt = message.text.split("回执号：", 1)[1].split("\n", 1)[0].strip()
            return outcome
        if misbehave and rng.random() < 0.25:
            outcome.misbehaved += 1
            message = await _misbehave(user, rng, message, answered_buttons)
            continue
        message = await _answer(user, rng, message, decline, answered_buttons)
        if message.text.startswith(texts.DECLINED[:6]):
            outcome.result = "declined"
            return outcome
    return outcome


async def answer_step(user: SimUser, rng: random.Random, message: BotMessage) -> BotMessage:
    """One well-behaved step: answer whatever ``message`` asks; returns the bot's next message."""
    return await _answer(user, rng, message, False, [])


async def _answer(
    user: SimUser, rng: random.Random, message: BotMessage, decline: bool, answered: list[str]
) -> BotMessage:
    consent = _buttons(message, cb.CONSENT)
    if consent:
        choice = (
            consent[-1]
            if decline
            else (consent[1] if len(consent) == 3 and rng.random() < 0.1 else consent[0])
        )
        return (await user.click(data=choice[1], message=message, timeout=PATIENCE)).messages[-1]
    summary = _buttons(message, cb.SUMMARY)
    if summary:
        submit = next(data for text, data in summary if data.endswith("submit"))
        return (await user.click(data=submit, message=message, timeout=PATIENCE)).messages[-1]
    options = _buttons(message, cb.ANSWER)
    if options:
        _text, data = rng.choice(options)
        answered.append(data)
        return (await user.click(data=data, message=message, timeout=PATIENCE)).messages[-1]
    toggles = _buttons(message, cb.TOGGLE)
    if toggles:
        for _text, data in rng.sample(toggles, k=min(len(toggles), rng.randint(1, 2))):
            await user.click(data=data, message=message, expect=0, timeout=PATIENCE)
        done = _buttons(message, cb.DONE)[0][1]
        return (await user.click(data=done, message=message, timeout=PATIENCE)).messages[-1]
    phone = _buttons(message, cb.PHONE)
    if phone:
        yes = rng.random() < 0.3
        data = next(d for _t, d in phone if d.endswith("yes" if yes else "no"))
        return (await user.click(data=data, message=message, timeout=PATIENCE)).messages[-1]
    if "打字回复" in message.text:
        skip = _buttons(message, cb.SKIP)
        if skip and rng.random() < 0.3:
            return (await user.click(data=skip[0][1], message=message, timeout=PATIENCE)).messages[-1]
        return (await user.send(rng.choice(GRIEVANCES + SUGGESTIONS), timeout=PATIENCE))[-1]
    if texts.NUMBER_HINT in message.text:
        return (await user.send(str(rng.randint(1, 6)), timeout=PATIENCE))[-1]
    return (await user.send(f"13{rng.randint(100000000, 999999999)}", timeout=PATIENCE))[-1]


async def _misbehave(
    user: SimUser, rng: random.Random, message: BotMessage, answered: list[str]
) -> BotMessage:
    trick = rng.choice(("sticker", "text", "stale", "back", "empty"))
    if trick == "sticker":
        return (await user.send_sticker(timeout=PATIENCE))[-1]
    if trick == "stale" and answered:
        await user.click(data=rng.choice(answered), message=message, expect=0, timeout=PATIENCE)
        return message
    if trick == "back":
        return (await user.send("/back", timeout=PATIENCE))[-1]
    if trick == "empty":
        return (await user.send("   ", timeout=PATIENCE))[-1]
    return (await user.send("嗯嗯，我想想", timeout=PATIENCE))[-1]
