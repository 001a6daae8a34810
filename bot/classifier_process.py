"""The risk classifier in a process of its own, so that classifying grievances never holds up a reply."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from bot.tagging import MODEL_NAME, ModelTags, NlpTagger

log = logging.getLogger(__name__)
LINE_LIMIT = 2**22  # bytes in one answer line of the worker: 32 texts' tags need a few kilobytes
STOP_SECONDS = 10.0  # the worker's time to finish its batch and end when the bot stops


class ProcessTagger(NlpTagger):
    """The default tagger with the model in a worker process (bot/classifier_worker.py); the urgent rules
    (`quick`) stay in the bot, which needs them before it replies.

    In a thread the model shares the interpreter with the event loop, and its work holds it (tokenising is
    plain Python, and the matrix products do not let go of it either): every batch was time in which no
    reply went out, and the slowest replies under load were those that waited for one. In a process of its
    own it runs on another core. The worker loads the model once, when the bot starts (`start`). If it dies,
    a new one takes the batch it had; a batch that fails twice stays untagged, and `catch_up` tries those
    answers again when the bot next starts.
    """

    def __init__(self) -> None:
        self._worker: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()  # one batch at a time on the worker's pipes

    async def start(self) -> None:
        """Start the worker and wait until it has loaded the model."""
        self.quick("预热")  # the urgent rules run here: build their tables now, not on the first grievance
        await self._call([])

    async def classify_batch(self, texts: Sequence[str]) -> list[ModelTags | None]:
        try:
            found = await self._call(list(texts))
        except WorkerFailed:
            log.exception("the classifier's worker failed on %s answers; they stay untagged", len(texts))
            return [None] * len(texts)
        return [
            ModelTags(tuple(tags["categories"]), tags["scores"], tags["uncertain"], MODEL_NAME)
            if tags
            else None
            for tags in found
        ]

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    async def close(self) -> None:
        """End the worker: it finishes the batch in hand, then sees its input closed."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        assert worker.stdin is not None
        worker.stdin.close()
        try:
            await asyncio.wait_for(worker.wait(), STOP_SECONDS)
        except TimeoutError:
            worker.kill()
            await worker.wait()

    async def _call(self, texts: list[str]) -> list[Any]:
        async with self._turn:
            for attempt in (1, 2):
                worker = await self._running()
                assert worker.stdin is not None and worker.stdout is not None
                try:
                    worker.stdin.write(json.dumps(texts, ensure_ascii=False).encode() + b"\n")
                    await worker.stdin.drain()
                    line = await worker.stdout.readline()
                except (BrokenPipeError, ConnectionResetError):
                    line = b""
                if line.endswith(b"\n"):
                    found: list[Any] = json.loads(line)
                    return found
                # The worker died (killed, out of memory): start another and give it the batch once more.
                log.warning("the classifier's worker process ended (attempt %s); starting a new one", attempt)
                self._worker = None
                if worker.returncode is None:
                    worker.kill()
                await worker.wait()
            raise WorkerFailed("the classifier's worker ended twice on one batch")

    async def _running(self) -> asyncio.subprocess.Process:
        if self._worker is None:
            self._worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.classifier_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=LINE_LIMIT,
            )
        return self._worker


class WorkerFailed(RuntimeError):
    pass
