"""`minyi nlp train|tag|eval`: train a text classifier, tag texts, evaluate a model on labelled data."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from minyi.commands import CommandError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("nlp", help="文本分析: 训练、标注、评估 (train, tag, evaluate)")
    commands = parser.add_subparsers(dest="nlp_command", metavar="ACTION")
    commands.required = True

    train = commands.add_parser("train", help="train a classifier on a CSV or JSONL file and save it")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="CSV (text,label | text,labels with ';') or JSONL")
    source.add_argument(
        "--from-db", action="store_true", help="seed corpus plus categories confirmed in the console"
    )
    train.add_argument("--out", required=True, help="directory to write the model and metadata.json into")
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    train.add_argument("--json", action="store_true", help="print the scores as JSON")
    train.set_defaults(func=_train)

    tag = commands.add_parser("tag", help="tag texts; one JSON object per input text on stdout")
    tag.add_argument("--model", help="model directory (default: the risk model built from the seed corpus)")
    tag.add_argument("--input", default="-", help="plain lines, CSV with a text column, or JSONL; - is stdin")
    tag.set_defaults(func=_tag)

    evaluate = commands.add_parser("eval", help="score a saved model on a labelled CSV or JSONL file")
    evaluate.add_argument("--model", required=True, help="model directory")
    evaluate.add_argument("--data", required=True, help="labelled CSV or JSONL file")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(func=_eval)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load_model(directory: str) -> Any:
    from nlp import artifacts

    if not Path(directory).is_dir():
        raise CommandError(f"{directory}: no such model directory")
    try:
        model, _ = artifacts.load(directory)
    except artifacts.ArtifactError as error:
        raise CommandError(str(error)) from None
    return model


def _width(text: str) -> int:
    """Columns a string takes in a terminal: Chinese characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _label_table(per_label: dict[str, dict[str, float]]) -> list[str]:
    width = max([_width(name) for name in per_label] + [5])
    lines = [f"  {_pad('label', width)}  precision  recall     f1  support"]
    for name, row in per_label.items():
        lines.append(
            f"  {_pad(name, width)}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}"
            f"  {int(row['support']):7d}"
        )
    return lines


def _train(args: argparse.Namespace) -> int:
    from nlp.corpus import CorpusError
    from nlp.train import train_file

    if args.folds < 2:
        raise CommandError("--folds must be at least 2")
    if args.from_db:
        from minyi.commands.retrain import from_db_command

        return from_db_command(args)
    if not Path(args.data).is_file():
        raise CommandError(f"{args.data}: no such file")
    _progress(f"training on {args.data}")
    try:
        model, report, saved = train_file(args.data, args.out, folds=args.folds, progress=_progress)
    except CorpusError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise CommandError(f"{args.data}: {error}") from None
    except OSError as error:
        raise CommandError(f"{args.out}: cannot write the model ({error.strerror})") from None
    if args.json:
        print(
            json.dumps(
                {"model": str(saved), "labels": list(model.labels), "cv": report.as_dict()},
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    kind = "multi-label" if model.multilabel else "multi-class"
    print(f"model saved to {saved} ({kind}, {len(model.labels)} labels, {report.n_examples} examples)")
    print(f"{report.folds}-fold cross-validation:")
    if report.accuracy is not None:
        print(f"  accuracy  {report.accuracy:.4f}")
    print(f"  macro-F1  {report.macro_f1:.4f}")
    print(f"  micro-F1  {report.micro_f1:.4f}")
    print("\n".join(_label_table(report.per_label)))
    print(f"took {report.seconds:.1f} s")
    return 0


def _tag(args: argparse.Namespace) -> int:
    from nlp.corpus import CorpusError, read_texts
    from nlp.pipeline import tag_many

    model = _load_model(args.model) if args.model else None
    try:
        if args.input == "-":
            texts = read_texts(sys.stdin, "stdin")
        else:
            path = Path(args.input)
            if not path.is_file():
                raise CommandError(f"{args.input}: no such file")
            with path.open(encoding="utf-8-sig") as handle:
                texts = read_texts(handle, path.name)
    except CorpusError as error:
        raise CommandError(str(error)) from None
    except UnicodeDecodeError:
        raise CommandError(f"{args.input}: not UTF-8 text") from None
    if model is None:
        from nlp.artifacts import ArtifactError
        from nlp.train import load_default_model

        try:
            # Progress goes to stderr and appears only when the default model has to be built first.
            model, _ = load_default_model(_progress)
        except ArtifactError as error:
            raise CommandError(str(error)) from None
    for start in range(0, len(texts), 256):
        for result in tag_many(texts[start : start + 256], model):
            print(json.dumps(result.to_json(), ensure_ascii=False))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from nlp.corpus import CorpusError, load_file
    from nlp.train import evaluate

    model = _load_model(args.model)
    if not Path(args.data).is_file():
        raise CommandError(f"{args.data}: no such file")
    try:
        dataset = load_file(args.data)
        report = evaluate(model, dataset.texts, dataset.labels)
    except CorpusError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise CommandError(f"{args.data}: {error}") from None
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"{report.n_examples} examples, {'multi-label' if report.multilabel else 'multi-class'}")
    if report.accuracy is not None:
        print(f"accuracy  {report.accuracy:.4f}")
    print(f"macro-F1  {report.macro_f1:.4f}")
    print(f"micro-F1  {report.micro_f1:.4f}")
    print("\n".join(_label_table(report.per_label)))
    if report.confusion is not None:
        print("confusion (rows: true, columns: predicted):")
        width = max(_width(name) for name in report.labels)
        for name, row in zip(report.labels, report.confusion, strict=True):
            print(f"  {_pad(name, width)}  " + " ".join(f"{n:5d}" for n in row))
    return 0
