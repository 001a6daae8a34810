"""The classifier's worker process (`python -m bot.classifier_worker`): reads batches of texts, one JSON
list per line on stdin, and writes each batch's tags as one JSON line on stdout (null for a text the
model failed on). bot/classifier_process.py starts it and talks to it."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

from bot.tagging import NlpTagger, classify_texts


def classify(texts: list[str]) -> list[dict[str, Any] | None]:
    return [
        {"categories": list(tags.categories), "scores": dict(tags.scores), "uncertain": tags.uncertain}
        if tags is not None
        else None
        for tags in classify_texts(NlpTagger(), texts)
    ]


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
