"""The classifier's worker process (`python -m bot.classifier_worker`): reads batches of texts, one JSON
list per line on stdin, and writes each batch's tags as one JSON line on stdout. bot/classifier_process.py
starts it and talks to it; it imports only the nlp library, so it starts quickly and stays small."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

log = logging.getLogger("bot.classifier_worker")


def classify(texts: list[str]) -> list[dict[str, Any] | None]:
    """Each text's categories, scores and uncertainty; None where the model failed on it."""
    from nlp.pipeline import TagResult, tag_many

    def plain(result: TagResult) -> dict[str, Any]:
        return {"categories": list(result.categories), "scores": result.scores, "uncertain": result.uncertain}

    try:
        return [plain(result) for result in tag_many(texts)]
    except Exception:
        log.exception("classifier failed on a batch of %s; trying them one by one", len(texts))
    found: list[dict[str, Any] | None] = []
    for text in texts:
        try:
            found.append(plain(tag_many([text])[0]))
        except Exception:
            log.exception("classifier failed on an answer; it stays untagged for now")
            found.append(None)
    return found


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the bot ends its worker itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Standard output carries the answers and nothing else: whatever a library prints goes to the log.
    answers, sys.stdout = sys.stdout, sys.stderr
    from nlp.pipeline import warm_up

    warm_up()
    for line in sys.stdin:  # ends when the bot closes the pipe
        answers.write(json.dumps(classify(json.loads(line)), ensure_ascii=False) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
