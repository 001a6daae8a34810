"""Labelled text data: the seed corpus, CSV and JSONL files, and the seed corpus's fixed held-out split."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nlp.tokenize import normalize

__all__ = [
    "CorpusError",
    "Dataset",
    "Example",
    "data_hash",
    "is_heldout",
    "load_file",
    "load_seed",
    "read_texts",
    "seed_split",
]

# Share of the seed corpus kept out of every fit and every tuning step, chosen by a hash of the text.
HELDOUT_PERCENT = 20


class CorpusError(ValueError):
    """A data file that cannot be read as labelled texts; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    """One text with its labels (risk codes or another label set) and, for the seed corpus, its signals."""

    text: str
    labels: tuple[str, ...]
    signals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dataset:
    """Examples from one file; `multilabel` says whether a text may carry zero or several labels."""

    examples: tuple[Example, ...]
    multilabel: bool
    source: str = ""

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[tuple[str, ...]]:
        return [e.labels for e in self.examples]

    def label_set(self) -> list[str]:
        return sorted({label for e in self.examples for label in e.labels})


def _str_list(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(";") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise CorpusError(f"{where}: expected a list of strings, got {value!r}")


def _jsonl_examples(text: str, source: str, tolerate_partial_tail: bool) -> tuple[list[Example], bool]:
    examples: list[Example] = []
    multilabel = False
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            # A file still being appended to may end in half a line; everything before it is valid.
            if tolerate_partial_tail and number == len(lines) and not text.endswith("\n"):
                break
            raise CorpusError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(f"{where}: expected an object with a 'text' string")
        if "categories" in record or "labels" in record:
            multilabel = True
            labels = _str_list(record.get("categories", record.get("labels")), where)
        elif "label" in record:
            label = record["label"]
            if not isinstance(label, str) or not label:
                raise CorpusError(f"{where}: 'label' must be a non-empty string")
            labels = (label,)
        else:
            raise CorpusError(f"{where}: no 'categories', 'labels' or 'label' field")
        signals = _str_list(record.get("signals"), where)
        examples.append(Example(record["text"], labels, signals))
    return examples, multilabel


def _csv_examples(text: str, source: str) -> tuple[list[Example], bool]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if "text" not in fields:
        raise CorpusError(f"{source}: CSV needs a 'text' column (found: {', '.join(fields) or 'none'})")
    if "labels" in fields:
        column, multilabel = "labels", True
    elif "label" in fields:
        column, multilabel = "label", False
    else:
        raise CorpusError(f"{source}: CSV needs a 'label' or a 'labels' column")
    examples: list[Example] = []
    for number, row in enumerate(reader, start=2):
        value = (row.get(column) or "").strip()
        if multilabel:
            labels = _str_list(value, f"{source}:{number}")
        elif value:
            labels = (value,)
        else:
            raise CorpusError(f"{source}:{number}: empty label")
        examples.append(Example(row.get("text") or "", labels))
    return examples, multilabel


def load_file(path: str | Path) -> Dataset:
    """Read CSV (`text,label` or `text,labels` with ';'-separated codes) or JSONL, chosen by extension."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CorpusError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{file}: cannot read ({error})") from None
    if file.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        examples, multilabel = _jsonl_examples(text, str(file), tolerate_partial_tail=False)
    elif file.suffix.lower() in {".csv", ".tsv"}:
        examples, multilabel = _csv_examples(text, str(file))
    else:
        raise CorpusError(f"{file}: expected a .csv or .jsonl file")
    if not examples:
        raise CorpusError(f"{file}: no examples")
    return Dataset(tuple(examples), multilabel, str(file))


def seed_dir() -> Path:
    return Path(str(resources.files("nlp").joinpath("data", "seed")))


def load_seed(directory: str | Path | None = None) -> Dataset:
    """All hand-written seed grievances (every *.jsonl under nlp/data/seed), in a stable order."""
    folder = Path(directory) if directory is not None else seed_dir()
    examples: list[Example] = []
    for file in sorted(folder.glob("*.jsonl")):
        part, _ = _jsonl_examples(file.read_text(encoding="utf-8"), str(file), tolerate_partial_tail=True)
        examples.extend(part)
    if not examples:
        raise CorpusError(f"{folder}: no seed examples")
    return Dataset(tuple(examples), multilabel=True, source=str(folder))


def _text_key(text: str) -> str:
    return "".join(normalize(text).split())


def is_heldout(text: str) -> bool:
    """Whether a text belongs to the held-out 20%: a hash of its normalised form, so stable everywhere."""
    digest = hashlib.sha256(_text_key(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT


def seed_split(dataset: Dataset) -> tuple[Dataset, Dataset]:
    """(training part, held-out part) of a corpus; near-duplicates that normalise alike share a side."""
    train = tuple(e for e in dataset.examples if not is_heldout(e.text))
    held = tuple(e for e in dataset.examples if is_heldout(e.text))
    source, multilabel = dataset.source, dataset.multilabel
    return Dataset(train, multilabel, source), Dataset(held, multilabel, source)


def data_hash(texts: Sequence[str], labels: Iterable[Sequence[str]]) -> str:
    """A short fingerprint of the training data, recorded with a model so its origin can be checked."""
    digest = hashlib.sha256()
    for text, row in zip(texts, labels, strict=True):
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f")
        digest.update("\x1e".join(row).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def read_texts(stream: io.TextIOBase | Iterable[str], name: str = "") -> list[str]:
    """Texts to tag: plain lines, CSV with a `text` column, or JSONL with a `text` field (sniffed)."""
    content = "".join(stream)
    if content.startswith("\ufeff"):
        content = content[1:]
    lines = content.splitlines()
    first = next((line for line in lines if line.strip()), "")
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")) or first.lstrip().startswith("{"):
        texts: list[str] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorpusError(f"{name or 'input'}:{number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CorpusError(f"{name or 'input'}:{number}: expected an object with a 'text' string")
            texts.append(record["text"])
        return texts
    header = next(csv.reader([first]), []) if first else []
    if lower.endswith(".csv") or (len(header) > 1 and "text" in [h.strip() for h in header]):
        reader = csv.DictReader(io.StringIO(content))
        if "text" not in [f.strip() for f in (reader.fieldnames or [])]:
            raise CorpusError(f"{name or 'input'}: CSV needs a 'text' column")
        return [(row.get("text") or "") for row in reader]
    return [line for line in lines if line.strip()]
