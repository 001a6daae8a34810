"""The risk classifier in a process of its own, so that classifying grievances never holds up a reply."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from bot.tagging import ModelTags, NlpTagger, classify_texts

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProcessTagger(NlpTagger):
    """The default tagger, with the model in a worker process; the urgent rules (`quick`) stay in the bot.

    In a thread the model shares the interpreter with the event loop, and its work holds it (tokenising is
    plain Python, and the matrix products do not let go of it either): every batch was time in which no
    reply went out, and the slowest replies under load were those that waited for one. In a process of its
    own it runs on another core. The worker loads the model once, when the bot starts (`start`). If it dies,
    a new one takes the batch it had; a batch that fails twice stays untagged, and `catch_up` tries those
    answers again when the bot next starts.
    """

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def start(self) -> None:
        """Start the worker and wait until it has loaded the model."""
        self.quick("预热")  # the urgent rules run here: build their tables now, not on the first grievance
        await self._run(_worker_pid)

    async def classify_batch(self, texts: Sequence[str]) -> list[ModelTags | None]:
        try:
            return await self._run(_classify, list(texts))
        except Exception:
            log.exception("the classifier's worker failed on %s answers; they stay untagged", len(texts))
            return [None] * len(texts)

    async def worker_pid(self) -> int:
        return await self._run(_worker_pid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self._pool is None:
                self._pool = _new_pool()
            try:
                return await loop.run_in_executor(self._pool, function, *args)
            except BrokenProcessPool:
                # The worker died (killed, out of memory): start another and give it the work once more.
                log.warning("the classifier's worker process ended; starting a new one")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _new_pool() -> concurrent.futures.ProcessPoolExecutor:
    # "spawn": a fresh interpreter, not a copy of the bot's (forking a process with an event loop, open
    # connections and threads is unsafe).
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )


def _start_worker() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the bot stops its worker itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from nlp.pipeline import warm_up

    warm_up()


def _classify(texts: list[str]) -> list[ModelTags | None]:
    return classify_texts(NlpTagger(), texts)


def _worker_pid() -> int:
    return os.getpid()
