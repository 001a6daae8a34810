"""Chinese text normalisation and jieba word segmentation with the project's dictionary and stopwords."""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["fold_with_offsets", "init", "normalize", "stopwords", "tokenize"]

_lock = threading.Lock()
_tokenizer: Any = None


def _data_text(name: str) -> str:
    return resources.files("nlp").joinpath("data", name).read_text(encoding="utf-8")


@cache
def _zh_tables() -> tuple[frozenset[str], Any]:
    """Load zhconv's table ourselves: its own loader leaves the file open (a ResourceWarning)."""
    import zhconv.zhconv as zc

    if zc.zhcdicts is None:
        zc.loaddict(os.path.join(os.path.dirname(zc.__file__), "zhcdict.json"))
    return frozenset(zc.zhcdicts["TRADONLY"]), zc.convert


@cache
def _char_table() -> dict[str, str]:
    """Single-character traditional → simplified pairs, for folding that must keep offsets."""
    import zhconv.zhconv as zc

    _zh_tables()
    table: dict[str, str] = zc.zhcdicts["zh2Hans"]
    return {k: v for k, v in table.items() if len(k) == 1 and len(v) == 1}


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Like normalize() but character by character, whitespace dropped, with each folded character's
    index in the original text, so that matches found in the folded text can be shown in the original."""
    table = _char_table()
    out: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        if char.isspace():
            continue
        for folded in unicodedata.normalize("NFKC", char):
            if folded.isspace():
                continue
            folded = table.get(folded, folded).lower()
            out.append(folded)
            offsets.extend([index] * len(folded))
    return "".join(out), offsets


def _to_simplified(text: str) -> str:
    trad_only, convert = _zh_tables()
    # Most input is already simplified; zhconv's phrase matching is the slowest step, so skip it then.
    if trad_only.isdisjoint(text):
        return text
    converted: str = convert(text, "zh-hans")
    return converted


def normalize(text: str) -> str:
    """Fold full-width forms to half-width (NFKC), traditional to simplified, Latin to lower case."""
    return _to_simplified(unicodedata.normalize("NFKC", text)).lower()


@cache
def stopwords() -> frozenset[str]:
    """Function words that carry no topic; negations (不, 没) are deliberately kept."""
    lines = (line.strip() for line in _data_text("stopwords.txt").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def init() -> Any:
    """Build the jieba tokenizer once per process (~0.5 s) with the project dictionary; thread-safe."""
    global _tokenizer
    if _tokenizer is not None:
        return _tokenizer
    with _lock:
        if _tokenizer is None:
            import jieba

            # jieba prints "Building prefix dict ..." at INFO on every start.
            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.initialize()
            for line in _data_text("userdict.txt").splitlines():
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
                tok.add_word(parts[0], freq)
            _tokenizer = tok
    return _tokenizer


def _keep(token: str, stop: frozenset[str]) -> bool:
    if token in stop or token.isspace():
        return False
    # Drop tokens made only of punctuation and symbols; keep words, numbers and emoji-free Latin.
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


def tokenize(text: str) -> list[str]:
    """Normalise then segment into words, dropping stopwords and punctuation.

    A module-level function so that a fitted TfidfVectorizer that uses it can be pickled.
    """
    tok = init()
    stop = stopwords()
    words: list[str] = tok.lcut(normalize(text))
    return [w for w in words if _keep(w, stop)]
