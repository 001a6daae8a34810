"""The terminal transport: answer a questionnaire in a terminal, as a resident would in Telegram."""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.engine import DialogEngine
from bot.links import LinkTarget, make_payload
from bot.messages import Button, Incoming, Kind, Reply
from bot.publishing import publish
from bot.survey_file import parse_survey
from storage import repository as repo
from storage.database import Database
from storage.migrate import upgrade

PREVIEW_USER = 1
HELP = "（输入文字回答；输入方括号里的数字点按钮；/back 上一题；/quit 退出）"
PHOTO = "［图片，{size} KB］"


class ConsoleChat:
    """Shows replies as text with numbered buttons and turns typed lines into updates."""

    def __init__(self, engine: DialogEngine, write: Callable[[str], None]) -> None:
        self.engine = engine
        self.write = write
        self.buttons: list[Button] = []
        self.message_ids = itertools.count(1)
        self.last_message = 0
        self.update_ids = itertools.count(1)

    async def show(self, replies: list[Reply]) -> None:
        for reply in replies:
            if reply.action == "answer_callback":
                if reply.text:
                    self.write(f"  ⓘ {reply.text}")
                continue
            if reply.action in ("send", "photo"):
                self.last_message = next(self.message_ids)
            self.write("")
            if reply.action == "photo":
                self.write(PHOTO.format(size=max(1, len(reply.image) // 1024)))
            self.write(reply.text)
            self.buttons = [b for row in reply.buttons for b in row]
            for number, button in enumerate(self.buttons, start=1):
                self.write(f"  [{number}] {button.text}")

    async def say(self, line: str) -> None:
        line = line.strip()
        if line.isdigit() and 1 <= int(line) <= len(self.buttons):
            button = self.buttons[int(line) - 1]
            incoming = Incoming(
                next(self.update_ids),
                PREVIEW_USER,
                PREVIEW_USER,
                Kind.CALLBACK,
                callback_data=button.data,
                callback_id=str(next(self.update_ids)),
                message_id=self.last_message,
            )
        else:
            incoming = Incoming(next(self.update_ids), PREVIEW_USER, PREVIEW_USER, Kind.TEXT, text=line)
        await self.show(await self.engine.handle(incoming))


async def preview(source: str, read: Callable[[], str] = input, write: Callable[[str], None] = print) -> int:
    """Run a questionnaire in the terminal against a throwaway database."""
    questionnaire = parse_survey(source)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'preview.db'}"
        await upgrade(url)
        async with Database(url) as db:
            async with db.transaction() as session:
                project = await repo.create_project(session, "PREVIEW", questionnaire.title)
                await publish(session, project, questionnaire, source)
            secret = b"preview"
            chat = ConsoleChat(DialogEngine(db, link_secret=secret), write)
            write(HELP)
            await chat.say("/start " + make_payload(secret, LinkTarget(project.id, 0)))
            while True:
                try:
                    line = await asyncio.to_thread(read)
                except EOFError:
                    break
                if line.strip() in ("/quit", "/exit"):
                    break
                await chat.say(line)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(preview(Path(sys.argv[1]).read_text(encoding="utf-8"))))
