"""Training and evaluation from data files, and the default risk model built from the seed corpus."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp import artifacts, taxonomy
from nlp.classifier import (
    ClassifierConfig,
    CVReport,
    Progress,
    TextClassifier,
    fit_multiclass,
    fit_multilabel,
)
from nlp.corpus import Dataset, data_hash, load_file, load_seed, seed_split

__all__ = [
    "RISK_CONFIG",
    "EvalReport",
    "default_model_dir",
    "evaluate",
    "load_default_model",
    "train_dataset",
    "train_file",
    "train_risk_model",
]

# Chosen by 5-fold CV on the training part of the seed corpus (micro-F1 0.686 with word unigrams, 0.689
# with bigrams, 0.696 with a full-weight 20-character lead and C=1); the held-out part was never used.
RISK_CONFIG = ClassifierConfig(
    word_ngrams=(1, 2), min_df=1, char_min_df=1, c=1.0, lead_chars=20, lead_weight=1.0
)

_default_lock = threading.Lock()


def _ordered_labels(dataset: Dataset) -> list[str]:
    present = dataset.label_set()
    codes = taxonomy.codes()
    if set(present) <= set(codes):
        return [c for c in codes if c in present]
    return present


def train_dataset(
    dataset: Dataset,
    config: ClassifierConfig | None = None,
    folds: int = 5,
    progress: Progress | None = None,
) -> tuple[TextClassifier, CVReport]:
    """Multi-label when the data is (JSONL categories or CSV `labels`), otherwise multi-class."""
    if dataset.multilabel:
        return fit_multilabel(
            dataset.texts, dataset.labels, _ordered_labels(dataset), config, folds, progress
        )
    return fit_multiclass(dataset.texts, [row[0] for row in dataset.labels], config, folds, progress)


def train_file(
    path: str | Path,
    out: str | Path,
    config: ClassifierConfig | None = None,
    folds: int = 5,
    progress: Progress | None = None,
) -> tuple[TextClassifier, CVReport, Path]:
    """Train on a CSV or JSONL file and save the model with its metadata in `out`."""
    dataset = load_file(path)
    model, report = train_dataset(dataset, config, folds, progress)
    saved = artifacts.save(
        model,
        out,
        data_hash=data_hash(dataset.texts, dataset.labels),
        report=report,
        extra={"data_source": Path(path).name},
    )
    return model, report, saved


def train_risk_model(progress: Progress | None = None) -> tuple[TextClassifier, CVReport, str]:
    """The risk model: the 14 taxonomy codes, fitted on the training part of the seed corpus only, so that
    the held-out part measures exactly the model that is used."""
    train, _ = seed_split(load_seed())
    model, report = fit_multilabel(train.texts, train.labels, taxonomy.codes(), RISK_CONFIG, 5, progress)
    return model, report, data_hash(train.texts, train.labels)


def default_model_dir() -> Path:
    """MINYI_MODEL_DIR if set; otherwise a cache directory keyed by the seed data, library versions and the
    code the pickled pipeline refers to, so a changed corpus, an upgraded scikit-learn or a changed
    tokeniser builds a fresh model instead of loading a stale one."""
    override = os.environ.get("MINYI_MODEL_DIR")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minyi" / "models"
    train, _ = seed_split(load_seed())
    versions = artifacts.library_versions()
    key = data_hash(train.texts, train.labels)[:12]
    return base / f"risk-{key}-{_code_digest()}-sklearn{versions['scikit-learn']}"


def _code_digest() -> str:
    """A digest of the modules and word lists a fitted pipeline depends on when it is unpickled."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("tokenize.py", "classifier.py", "data/userdict.txt", "data/stopwords.txt"):
        path = here / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def _build_default(folder: Path, progress: Progress | None) -> None:
    model, report, digest = train_risk_model(progress)
    try:
        artifacts.save(model, folder, data_hash=digest, report=report, extra={"data_source": "seed"})
    except OSError:
        # Another process finished the same deterministic build first; its model is as good as ours.
        if not (folder / artifacts.META_FILE).is_file():
            raise


def load_default_model(progress: Progress | None = None) -> tuple[TextClassifier, artifacts.ModelInfo]:
    """Load the default risk model, building it first (deterministically, in seconds) if it is absent.

    A cached model left by other library versions is rebuilt; one named by MINYI_MODEL_DIR is the
    operator's choice and is refused instead (ArtifactVersionError), never silently replaced."""
    folder = default_model_dir()
    with _default_lock:
        if not (folder / artifacts.META_FILE).is_file():
            _build_default(folder, progress)
        try:
            return artifacts.load(folder)
        except artifacts.ArtifactVersionError:
            if os.environ.get("MINYI_MODEL_DIR"):
                raise
            _build_default(folder, progress)
            return artifacts.load(folder)


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Scores of a saved model on a labelled file."""

    n_examples: int
    multilabel: bool
    micro_f1: float
    macro_f1: float
    accuracy: float | None
    per_label: dict[str, dict[str, float]]
    confusion: list[list[int]] | None
    labels: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_examples": self.n_examples,
            "multilabel": self.multilabel,
            "micro_f1": round(self.micro_f1, 4),
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "per_label": self.per_label,
            "labels": self.labels,
            "confusion": self.confusion,
        }


def evaluate(model: TextClassifier, texts: Sequence[str], labels: Sequence[Sequence[str]]) -> EvalReport:
    """Per-label precision/recall/F1, micro and macro F1; accuracy and a confusion matrix if single-label."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    unknown = sorted({lab for row in labels for lab in row} - set(model.labels))
    if unknown:
        raise ValueError(f"labels the model does not know: {', '.join(unknown)}")
    predictions = model.predict(texts)
    names = list(model.labels)
    truth = np.array([[name in row for name in names] for row in labels], dtype=int)
    guess = np.array([[name in p.labels for name in names] for p in predictions], dtype=int)
    p, r, f, s = precision_recall_fscore_support(truth, guess, zero_division=0)
    per_label = {
        name: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, name in enumerate(names)
    }
    accuracy: float | None = None
    confusion: list[list[int]] | None = None
    if not model.multilabel:
        y_true = [row[0] for row in labels]
        y_pred = [pred.labels[0] for pred in predictions]
        accuracy = float(accuracy_score(y_true, y_pred))
        confusion = confusion_matrix(y_true, y_pred, labels=names).tolist()
    return EvalReport(
        n_examples=len(texts),
        multilabel=model.multilabel,
        micro_f1=float(f1_score(truth, guess, average="micro", zero_division=0)),
        macro_f1=float(f1_score(truth, guess, average="macro", zero_division=0)),
        accuracy=accuracy,
        per_label=per_label,
        confusion=confusion,
        labels=names,
    )
