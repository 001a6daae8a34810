"""Text classifiers: jieba word + character n-gram TF-IDF into linear models, multi-label or multi-class."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from nlp.tokenize import normalize, tokenize

__all__ = [
    "CVReport",
    "ClassifierConfig",
    "LeadText",
    "Prediction",
    "TextClassifier",
    "char_text",
    "fit_multiclass",
    "fit_multilabel",
    "word_tokens",
]

Progress = Callable[[str], None]


@lru_cache(maxsize=20_000)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(tokenize(text))


def word_tokens(text: str) -> list[str]:
    """The word analyser's tokenizer. Cached because cross-validation segments each text once per fold,
    and jieba is the slowest step; module-level so that fitted vectorizers pickle."""
    return list(_tokens(text))


def char_text(text: str) -> str:
    """The character analyser's preprocessor: normalised, whitespace collapsed."""
    return " ".join(normalize(text).split())


class LeadText:
    """The lead analyser's preprocessor: the opening characters, where titles and first sentences are.
    A class rather than a closure so that a fitted vectorizer holding it pickles."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, text: str) -> str:
        return char_text(text)[: self.length]


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Hyper-parameters of the pipeline.

    The defaults won 5-fold stratified CV on the TipDM citizen messages (macro-F1): words + chars with
    LinearSVC 0.893, + balanced class weights 0.895, + lead n-grams of the first 30 chars 0.903, first
    20 chars 0.904, with C=2 0.905, lead weight 0.75 0.906; word bigrams, char 4-grams, logistic
    regression, ridge, SGD, a complement naive Bayes ensemble and SVD(400) + RBF SVM (0.896 alone,
    0.904 averaged with the linear SVM) did not help.
    """

    word_ngrams: tuple[int, int] = (1, 1)
    char_ngrams: tuple[int, int] = (1, 3)
    # Minimum document frequency of a word n-gram and of a character n-gram.
    min_df: int = 1
    char_min_df: int = 2
    sublinear_tf: bool = True
    c: float = 2.0
    class_weight: str | None = "balanced"
    # Character n-grams of the opening (a title or first sentence carries the gist), and their weight.
    lead_chars: int = 20
    lead_weight: float = 0.75
    # Multi-label: a text is marked for review when its best score is this close to that label's threshold.
    review_margin: float = 0.15
    # Multi-class: a text is marked for review when its top probability is below this.
    min_confidence: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "min_df": self.min_df,
            "char_min_df": self.char_min_df,
            "sublinear_tf": self.sublinear_tf,
            "c": self.c,
            "class_weight": self.class_weight,
            "lead_chars": self.lead_chars,
            "lead_weight": self.lead_weight,
            "review_margin": self.review_margin,
            "min_confidence": self.min_confidence,
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    """Labels given to one text, every label's calibrated score, and whether a person should look first."""

    labels: tuple[str, ...]
    scores: dict[str, float]
    uncertain: bool


@dataclass(slots=True)
class CVReport:
    """Cross-validated quality of a configuration, computed on out-of-fold predictions only."""

    folds: int
    n_examples: int
    micro_f1: float
    macro_f1: float
    accuracy: float | None
    per_label: dict[str, dict[str, float]]
    seconds: float
    thresholds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "n_examples": self.n_examples,
            "micro_f1": round(self.micro_f1, 4),
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "per_label": self.per_label,
            "seconds": round(self.seconds, 2),
        }


def _features(config: ClassifierConfig) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    common: dict[str, Any] = {"lowercase": False, "sublinear_tf": config.sublinear_tf, "dtype": np.float32}
    words = TfidfVectorizer(
        tokenizer=word_tokens,
        token_pattern=None,
        ngram_range=config.word_ngrams,
        min_df=config.min_df,
        **common,
    )
    char_options: dict[str, Any] = {"ngram_range": config.char_ngrams, "min_df": config.char_min_df, **common}
    chars = TfidfVectorizer(analyzer="char", preprocessor=char_text, **char_options)
    parts: list[tuple[str, Any]] = [("words", words), ("chars", chars)]
    weights = {"words": 1.0, "chars": 1.0}
    if config.lead_weight > 0:
        lead = TfidfVectorizer(analyzer="char", preprocessor=LeadText(config.lead_chars), **char_options)
        parts.append(("lead", lead))
        weights["lead"] = config.lead_weight
    return FeatureUnion(parts, transformer_weights=weights)


def build_pipeline(config: ClassifierConfig, multilabel: bool) -> Any:
    """The unfitted scikit-learn Pipeline: TF-IDF features, then linear SVMs (one per label if multi-label).

    Scores are calibrated afterwards by a Platt sigmoid per label fitted on out-of-fold decision values,
    which costs nothing beyond the cross-validation that chooses the thresholds anyway (nesting
    CalibratedClassifierCV inside it made training ten times slower for the same scores)."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=config.c, class_weight=config.class_weight, random_state=0)
    model = OneVsRestClassifier(svm) if multilabel else svm
    return Pipeline([("features", _features(config)), ("model", model)])


def _decisions(pipeline: Any, texts: Sequence[str], n_labels: int) -> np.ndarray:
    values = np.asarray(pipeline.decision_function(list(texts)), dtype=float)
    if values.ndim == 1:
        # Two classes: scikit-learn returns one column, the second class's margin.
        values = np.column_stack([-values, values]) if n_labels == 2 else values[:, None]
    return values


def fit_platt(decisions: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column sigmoid parameters (slope, offset) mapping SVM margins to probabilities."""
    from sklearn.linear_model import LogisticRegression

    slopes, offsets = np.ones(decisions.shape[1]), np.zeros(decisions.shape[1])
    for j in range(decisions.shape[1]):
        target = truth[:, j].astype(int)
        if 0 < target.sum() < len(target):
            fitted = LogisticRegression(C=100.0).fit(decisions[:, j : j + 1], target)
            slopes[j], offsets[j] = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    return slopes, offsets


def _sigmoid(values: np.ndarray, slopes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(values * slopes + offsets, -50, 50)))
    return result


class TextClassifier:
    """A fitted pipeline with its labels and decision rules; picklable, saved by nlp.artifacts."""

    def __init__(
        self,
        pipeline: Any,
        labels: Sequence[str],
        multilabel: bool,
        thresholds: dict[str, float],
        config: ClassifierConfig,
        platt: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.pipeline = pipeline
        self.labels = tuple(labels)
        self.multilabel = multilabel
        self.thresholds = dict(thresholds)
        self.config = config
        self.platt = platt

    def _linear(self) -> tuple[np.ndarray, np.ndarray] | None:
        """All labels' SVM weights as one matrix, a column per label: one product instead of one validated
        call per label (halves the time of tagging a single text). None when a label's model is not linear.

        Stored in the layout the product reads (features by labels, row after row): given the transpose
        of the labels-by-features matrix instead, scipy copied all of it on every call, about a sixth of
        the time of tagging one text."""
        cached: tuple[np.ndarray, np.ndarray] | None = getattr(self, "_weights", None)
        if cached is not None:
            return cached
        model = self.pipeline.named_steps["model"]
        estimators = getattr(model, "estimators_", [model])
        if not all(hasattr(e, "coef_") for e in estimators):
            return None
        coef = np.vstack([np.asarray(e.coef_, dtype=float) for e in estimators])
        intercept = np.concatenate([np.atleast_1d(np.asarray(e.intercept_, dtype=float)) for e in estimators])
        if coef.shape[0] == 1 and len(self.labels) == 2:
            coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
        if coef.shape[0] != len(self.labels):
            return None
        self._weights = (np.ascontiguousarray(coef.T), intercept)
        return self._weights

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_weights", None)  # derived from the pipeline; not worth pickling twice
        return state

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated scores, one row per text, one column per label (in self.labels order)."""
        from sklearn import config_context

        if not texts:
            return np.zeros((0, len(self.labels)))
        weights = self._linear()
        # The pipeline is ours and fitted, and term counts are always finite: scikit-learn's checks of
        # both took an eighth of the time of tagging a text.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            if weights is None:
                decisions = _decisions(self.pipeline, texts, len(self.labels))
            else:
                features = self.pipeline.named_steps["features"].transform(list(texts))
                decisions = np.asarray(features @ weights[0], dtype=float) + weights[1]
        return calibrated(decisions, self.platt, self.multilabel)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        matrix = self.scores(texts)
        return [self._decide(row) for row in matrix]

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text])[0]

    def _decide(self, row: np.ndarray) -> Prediction:
        scores = {label: round(float(score), 4) for label, score in zip(self.labels, row, strict=True)}
        best = int(np.argmax(row))
        if self.multilabel:
            chosen = tuple(
                label
                for label, score in zip(self.labels, row, strict=True)
                if score >= self.thresholds[label]
            )
            threshold = self.thresholds[self.labels[best]]
            uncertain = abs(float(row[best]) - threshold) < self.config.review_margin
        else:
            chosen = (self.labels[best],)
            uncertain = float(row[best]) < self.config.min_confidence
        return Prediction(chosen, scores, uncertain)


def calibrated(decisions: np.ndarray, platt: tuple[np.ndarray, np.ndarray], multilabel: bool) -> np.ndarray:
    """Margins → probabilities; for single-label data the per-class sigmoids are normalised to sum to 1."""
    scores = _sigmoid(decisions, *platt)
    if not multilabel:
        scores = scores / np.maximum(scores.sum(axis=1, keepdims=True), 1e-12)
    return scores


def _choose_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The score cut-off with the best F1 on out-of-fold scores; ties go to the one nearest 0.5."""
    best_f1, best_t = -1.0, 0.5
    for t in np.round(np.arange(0.1, 0.91, 0.025), 3):
        predicted = scores >= t
        tp = float(np.sum(predicted & truth))
        denominator = float(np.sum(predicted) + np.sum(truth))
        f1 = 2 * tp / denominator if denominator else 0.0
        if f1 > best_f1 + 1e-9 or (abs(f1 - best_f1) <= 1e-9 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_f1, best_t = f1, float(t)
    return best_t


def _per_label(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(truth, predicted, zero_division=0)
    return {
        label: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, label in enumerate(labels)
    }


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def fit_multilabel(
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    label_set: Sequence[str],
    config: ClassifierConfig | None = None,
    folds: int = 5,
    progress: Progress | None = None,
) -> tuple[TextClassifier, CVReport]:
    """Fit one calibrated classifier per label; thresholds come from out-of-fold scores, never the fit."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import KFold

    config = config or ClassifierConfig()
    started = time.perf_counter()
    known = list(label_set)
    unknown = sorted({lab for row in labels for lab in row} - set(known))
    if unknown:
        raise ValueError(f"labels not in the label set: {', '.join(unknown)}")
    y = np.array([[lab in row for lab in known] for row in labels], dtype=int)
    missing = [lab for lab, count in zip(known, y.sum(axis=0), strict=True) if count < folds]
    if missing:
        raise ValueError(f"too few examples (< {folds}) for: {', '.join(missing)}")
    x = list(texts)
    out_of_fold = np.zeros(y.shape, dtype=float)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=0)
    for number, (train, test) in enumerate(splitter.split(x), start=1):
        _say(progress, f"cross-validation fold {number}/{folds}")
        pipe = build_pipeline(config, multilabel=True)
        pipe.fit([x[i] for i in train], y[train])
        out_of_fold[test] = _decisions(pipe, [x[i] for i in test], len(known))
    platt = fit_platt(out_of_fold, y)
    out_of_fold = calibrated(out_of_fold, platt, multilabel=True)
    thresholds = {lab: _choose_threshold(y[:, j] == 1, out_of_fold[:, j]) for j, lab in enumerate(known)}
    cut = np.array([thresholds[lab] for lab in known])
    predicted = (out_of_fold >= cut).astype(int)
    report = CVReport(
        folds=folds,
        n_examples=len(x),
        micro_f1=float(f1_score(y, predicted, average="micro", zero_division=0)),
        macro_f1=float(f1_score(y, predicted, average="macro", zero_division=0)),
        accuracy=None,
        per_label=_per_label(y, predicted, known),
        seconds=0.0,
        thresholds=thresholds,
    )
    _say(progress, "fitting the final model on all examples")
    pipe = build_pipeline(config, multilabel=True)
    pipe.fit(x, y)
    report.seconds = time.perf_counter() - started
    _tokens.cache_clear()  # the cache only pays off across folds; do not hold it for the process
    return TextClassifier(pipe, known, True, thresholds, config, platt), report


def fit_multiclass(
    texts: Sequence[str],
    labels: Sequence[str],
    config: ClassifierConfig | None = None,
    folds: int = 5,
    progress: Progress | None = None,
) -> tuple[TextClassifier, CVReport]:
    """Fit a single-label classifier over whatever labels the data has; report stratified CV scores."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    config = config or ClassifierConfig()
    started = time.perf_counter()
    x, y = list(texts), np.array(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError("need at least two different labels")
    if counts.min() < folds:
        rare = ", ".join(str(c) for c, n in zip(classes, counts, strict=True) if n < folds)
        raise ValueError(f"too few examples (< {folds}) for: {rare}")
    decisions = np.zeros((len(y), len(classes)), dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for number, (train, test) in enumerate(splitter.split(x, y), start=1):
        _say(progress, f"cross-validation fold {number}/{folds}")
        pipe = build_pipeline(config, multilabel=False)
        pipe.fit([x[i] for i in train], y[train])
        decisions[test] = _decisions(pipe, [x[i] for i in test], len(classes))
    truth = np.array([[v == c for c in classes] for v in y], dtype=int)
    platt = fit_platt(decisions, truth)
    predicted = classes[np.argmax(calibrated(decisions, platt, multilabel=False), axis=1)]
    label_list = [str(c) for c in classes]
    onehot_true = truth
    onehot_pred = np.array([[v == c for c in classes] for v in predicted], dtype=int)
    report = CVReport(
        folds=folds,
        n_examples=len(x),
        micro_f1=float(f1_score(y, predicted, average="micro")),
        macro_f1=float(f1_score(y, predicted, average="macro")),
        accuracy=float(accuracy_score(y, predicted)),
        per_label=_per_label(onehot_true, onehot_pred, label_list),
        seconds=0.0,
    )
    _say(progress, "fitting the final model on all examples")
    pipe = build_pipeline(config, multilabel=False)
    pipe.fit(x, y)
    report.seconds = time.perf_counter() - started
    _tokens.cache_clear()  # the cache only pays off across folds; do not hold it for the process
    fitted_labels = [str(c) for c in pipe.classes_]
    return TextClassifier(pipe, fitted_labels, False, {}, config, platt), report
