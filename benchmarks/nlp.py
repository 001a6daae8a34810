"""NLP benchmark: TipDM cross-validation, seed held-out scores, urgent recall, throughput and model size.

Run from the repository root:  .venv/bin/python -m benchmarks.nlp [--json] [--skip-tipdm]
The TipDM file is read from ../shared/data at run time and never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nlp import taxonomy  # noqa: E402
from nlp.classifier import ClassifierConfig, TextClassifier, _tokens, build_pipeline, fit_multiclass  # noqa: E402
from nlp.corpus import load_seed, seed_split  # noqa: E402
from nlp.escalation import detect  # noqa: E402
from nlp.pipeline import tag_many  # noqa: E402
from nlp.tokenize import init, tokenize  # noqa: E402
from nlp.train import RISK_CONFIG, evaluate, train_risk_model  # noqa: E402

TIPDM = Path(os.environ.get("MINYI_TIPDM", ROOT.parent / "shared" / "data" / "tipdm2020c_train.csv"))
T = TypeVar("T")


def _timed(action: Callable[[], T]) -> tuple[T, float, float]:
    """Result, wall seconds and CPU seconds (the machine may be shared: CPU time is the steadier figure)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _model_bytes(model: TextClassifier) -> int:
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def bench_tipdm(path: Path, config: ClassifierConfig) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    _tokens.cache_clear()
    (model, report), wall, cpu = _timed(lambda: fit_multiclass(texts, labels, config, 5, _say))
    # Cold timings: the segmentation cache is cleared so jieba's cost is included, as on a fresh process.
    _tokens.cache_clear()
    _say("timing a cold fit on all texts")
    _, fit_wall, fit_cpu = _timed(lambda: build_pipeline(config, multilabel=False).fit(texts, labels))
    _tokens.cache_clear()
    sample = texts[:1000]
    _, predict_wall, predict_cpu = _timed(lambda: model.predict(sample))
    per_1000 = 1000 / len(sample)
    return {
        "file": path.name,
        "n_texts": len(texts),
        "n_labels": len(set(labels)),
        "config": config.as_dict(),
        "cv_folds": report.folds,
        "macro_f1": round(report.macro_f1, 4),
        "accuracy": round(report.accuracy or 0.0, 4),
        "per_label_f1": {k: v["f1"] for k, v in report.per_label.items()},
        "cv_total_wall_s": round(wall, 1),
        "cv_total_cpu_s": round(cpu, 1),
        "fit_all_cold_wall_s": round(fit_wall, 2),
        "fit_all_cold_cpu_s": round(fit_cpu, 2),
        "predict_per_1000_wall_s": round(predict_wall * per_1000, 2),
        "predict_per_1000_cpu_s": round(predict_cpu * per_1000, 2),
        "model_bytes": _model_bytes(model),
    }


def bench_seed() -> tuple[dict[str, Any], TextClassifier]:
    seed = load_seed()
    train, held = seed_split(seed)
    _tokens.cache_clear()
    (model, report, _), wall, cpu = _timed(lambda: train_risk_model(_say))
    scores = evaluate(model, held.texts, held.labels)
    predictions = model.predict(held.texts)
    result: dict[str, Any] = {
        "n_texts": len(seed.examples),
        "n_train": len(train.examples),
        "n_heldout": len(held.examples),
        "config": RISK_CONFIG.as_dict(),
        "train_cv_micro_f1": round(report.micro_f1, 4),
        "heldout_micro_f1": round(scores.micro_f1, 4),
        "heldout_macro_f1": round(scores.macro_f1, 4),
        "heldout_per_label_f1": {k: v["f1"] for k, v in scores.per_label.items()},
        "heldout_uncertain_share": round(sum(p.uncertain for p in predictions) / len(predictions), 3),
        "build_wall_s": round(wall, 1),
        "build_cpu_s": round(cpu, 1),
        "model_bytes": _model_bytes(model),
        "label_counts": {c: sum(c in e.labels for e in seed.examples) for c in taxonomy.codes()},
        "no_risk_texts": sum(not e.labels for e in seed.examples),
    }
    for name, part in (("heldout", held), ("all", seed)):
        truth = [bool(e.signals) for e in part.examples]
        flagged = [detect(e.text).urgent for e in part.examples]
        hits = sum(t and f for t, f in zip(truth, flagged, strict=True))
        typed = sum(set(e.signals) <= set(detect(e.text).signals) for e in part.examples if e.signals)
        result[f"urgent_{name}"] = {
            "urgent_texts": sum(truth),
            "recall": round(hits / max(sum(truth), 1), 4),
            "precision": round(hits / max(sum(flagged), 1), 4),
            "all_types_found": round(typed / max(sum(truth), 1), 4),
            "flagged": sum(flagged),
        }
    return result, model


def bench_throughput(model: TextClassifier, tipdm: Path | None) -> dict[str, Any]:
    seed_texts = [e.text for e in load_seed().examples]
    init()
    result: dict[str, Any] = {}
    corpora: list[tuple[str, list[str]]] = [("seed", seed_texts)]
    if tipdm is not None and tipdm.is_file():
        with tipdm.open(encoding="utf-8") as handle:
            corpora.append(("tipdm", [r["text"] for r in csv.DictReader(handle)][:500]))
    for name, texts in corpora:
        chars = sum(len(t) for t in texts)
        _, wall, cpu = _timed(lambda texts=texts: [tokenize(t) for t in texts])  # type: ignore[misc]
        result[f"tokenize_{name}"] = {
            "texts": len(texts),
            "mean_chars": round(chars / len(texts), 1),
            "texts_per_s": round(len(texts) / wall, 1),
            "chars_per_s": round(chars / wall),
            "cpu_s": round(cpu, 2),
        }
    _tokens.cache_clear()
    _, wall, cpu = _timed(lambda: tag_many(seed_texts, model))
    result["tag_batch_seed"] = {"texts": len(seed_texts), "texts_per_s": round(len(seed_texts) / wall, 1)}
    _tokens.cache_clear()
    sample = seed_texts[:200]
    _, wall, cpu = _timed(lambda: [tag_many([t], model) for t in sample])
    result["tag_one_by_one_seed"] = {
        "texts": len(sample),
        "texts_per_s": round(len(sample) / wall, 1),
        "ms_per_text": round(1000 * wall / len(sample), 2),
    }
    return result


def _table(report: dict[str, Any]) -> str:
    lines = ["Minyi NLP benchmark", ""]
    tip = report.get("tipdm")
    if tip:
        lines += [
            f"TipDM {tip['file']}: {tip['n_texts']} texts, {tip['n_labels']} labels, "
            f"{tip['cv_folds']}-fold stratified CV",
            f"  macro-F1                     {tip['macro_f1']:.4f}",
            f"  accuracy                     {tip['accuracy']:.4f}",
            f"  fit on all texts (cold)      {tip['fit_all_cold_wall_s']:.1f} s wall, "
            f"{tip['fit_all_cold_cpu_s']:.1f} s CPU",
            f"  inference per 1,000 texts    {tip['predict_per_1000_wall_s']:.2f} s wall, "
            f"{tip['predict_per_1000_cpu_s']:.2f} s CPU",
            f"  model size                   {tip['model_bytes'] / 1e6:.1f} MB",
            "",
        ]
    seed = report["seed"]
    lines += [
        f"Seed corpus: {seed['n_texts']} texts ({seed['n_train']} train, {seed['n_heldout']} held out)",
        f"  held-out micro-F1            {seed['heldout_micro_f1']:.4f}",
        f"  held-out macro-F1            {seed['heldout_macro_f1']:.4f}",
        f"  train CV micro-F1            {seed['train_cv_micro_f1']:.4f}",
        f"  held-out marked uncertain    {seed['heldout_uncertain_share']:.1%}",
        f"  risk model build             {seed['build_wall_s']:.1f} s wall, {seed['build_cpu_s']:.1f} s CPU",
        f"  risk model size              {seed['model_bytes'] / 1e6:.1f} MB",
    ]
    for name in ("heldout", "all"):
        u = seed[f"urgent_{name}"]
        lines.append(
            f"  urgent rules ({name:7s})      recall {u['recall']:.4f} of {u['urgent_texts']}, "
            f"precision {u['precision']:.4f}, all types found {u['all_types_found']:.4f}"
        )
    lines.append("")
    speed = report["throughput"]
    for key, row in speed.items():
        if key.startswith("tokenize_"):
            lines.append(
                f"  tokenise {key[9:]:6s} (mean {row['mean_chars']:.0f} chars)  "
                f"{row['texts_per_s']:.0f} texts/s, {row['chars_per_s']:.0f} chars/s"
            )
    lines.append(f"  tag, batch (seed)            {speed['tag_batch_seed']['texts_per_s']:.0f} texts/s")
    one = speed["tag_one_by_one_seed"]
    lines.append(
        f"  tag, one at a time (seed)    {one['texts_per_s']:.0f} texts/s ({one['ms_per_text']:.1f} ms each)"
    )
    lines.append(f"\ntotal {report['total_wall_s']:.0f} s")
    return "\n".join(lines)


def seed_counts_markdown() -> str:
    """The label and signal counts of nlp/data/SEED_DATASHEET.md, computed from the seed files."""
    from nlp.escalation import SIGNAL_TYPES

    seed = load_seed()
    train, held = seed_split(seed)
    examples = seed.examples
    lines = [
        f"{len(examples)} texts ({len(train.examples)} training, {len(held.examples)} held out); "
        f"{sum(not e.labels for e in examples)} carry no risk code; "
        f"{sum(bool(e.signals) for e in examples)} carry an urgent signal.",
        "",
        "| code | 中文 | texts | held out |",
        "|---|---|---:|---:|",
    ]
    for entry in taxonomy.load():
        total = sum(entry.code in e.labels for e in examples)
        kept = sum(entry.code in e.labels for e in held.examples)
        lines.append(f"| `{entry.code}` | {entry.name} | {total} | {kept} |")
    per_text = [len(e.labels) for e in examples]
    lines += ["", "| codes per text | texts |", "|---:|---:|"]
    lines += [f"| {n} | {per_text.count(n)} |" for n in sorted(set(per_text))]
    lines += ["", "| signal | texts |", "|---|---:|"]
    lines += [f"| `{kind}` | {sum(kind in e.signals for e in examples)} |" for kind in SIGNAL_TYPES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--skip-tipdm", action="store_true", help="skip the TipDM cross-validation")
    parser.add_argument("--tipdm", type=Path, default=TIPDM, help="path of tipdm2020c_train.csv")
    parser.add_argument("--seed-counts", action="store_true", help="print the seed corpus counts as Markdown")
    args = parser.parse_args(argv)
    if args.seed_counts:
        print(seed_counts_markdown())
        return 0
    started = time.perf_counter()
    report: dict[str, Any] = {}
    tipdm: Path | None = None if args.skip_tipdm else args.tipdm
    if tipdm is not None:
        if tipdm.is_file():
            _say(f"TipDM cross-validation on {tipdm}")
            report["tipdm"] = bench_tipdm(tipdm, ClassifierConfig())
        else:
            _say(f"{tipdm} not found: TipDM skipped")
    _say("seed corpus: building the risk model and scoring the held-out part")
    report["seed"], model = bench_seed()
    _say("throughput")
    report["throughput"] = bench_throughput(model, tipdm)
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else _table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
