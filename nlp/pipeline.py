"""One call from a resident's text to everything the bot and console store: tags, urgency, redacted text.

    from nlp.pipeline import tag, warm_up
    warm_up()                      # at start-up: jieba and the risk model, once per process
    result = tag("再不解决就去堵路")  # TagResult; result.to_json() is what `minyi nlp tag` prints
    if result.self_harm: ...       # answer with care and a crisis line first
    if result.urgent: ...          # queue an alert for the grid worker and the assessors

The default risk model is built from the seed corpus on first use (deterministic, about ten seconds of
CPU) into a cache directory keyed by the corpus and library versions, or into MINYI_MODEL_DIR; see
nlp.train.default_model_dir. Tagging is synchronous and CPU-bound: call it from a worker thread
(asyncio.to_thread) in async code.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nlp.classifier import Prediction, TextClassifier
from nlp.escalation import Escalation, SignalMatch, detect
from nlp.redact import Masked, redact

__all__ = ["TagResult", "default_model", "set_default_model", "tag", "tag_many", "warm_up"]

_lock = threading.Lock()
_model: TextClassifier | None = None


@dataclass(frozen=True, slots=True)
class TagResult:
    """What Minyi knows about one free-text answer. The classifier advises; a person confirms every tag."""

    text: str
    categories: tuple[str, ...]
    scores: dict[str, float]
    uncertain: bool
    urgent: bool
    signals: tuple[str, ...]
    redacted: str
    matches: tuple[SignalMatch, ...] = ()
    masked: tuple[Masked, ...] = ()

    @property
    def self_harm(self) -> bool:
        """Answer with care and a crisis line at once, besides alerting a person."""
        return "self_harm" in self.signals

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape (`minyi nlp tag` prints exactly these keys)."""
        return {
            "text": self.text,
            "categories": list(self.categories),
            "scores": dict(self.scores),
            "uncertain": self.uncertain,
            "urgent": self.urgent,
            "signals": list(self.signals),
            "redacted": self.redacted,
        }


def default_model() -> TextClassifier:
    """The process-wide risk model, loaded (or built from the seed corpus) once, on first use."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from nlp.train import load_default_model

                _model, _ = load_default_model()
    return _model


def set_default_model(model: TextClassifier | None) -> None:
    """Replace the process-wide model (a deployment's own, or None to load the default again)."""
    global _model
    with _lock:
        _model = model


def warm_up() -> None:
    """Load jieba and the model at start-up so the first resident does not wait for them."""
    from nlp.tokenize import init

    init()
    default_model()


def _has_content(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _combine(text: str, prediction: Prediction | None, escalation: Escalation) -> TagResult:
    redaction = redact(text)
    return TagResult(
        text=text,
        categories=prediction.labels if prediction else (),
        scores=prediction.scores if prediction else {},
        uncertain=prediction.uncertain if prediction else False,
        urgent=escalation.urgent,
        signals=escalation.signals,
        redacted=redaction.text,
        matches=escalation.matches,
        masked=redaction.masked,
    )


def tag_many(texts: Sequence[str], model: TextClassifier | None = None) -> list[TagResult]:
    """Tag several texts in one classifier call (faster than one by one)."""
    classifier = model or default_model()
    with_content = [i for i, t in enumerate(texts) if _has_content(t)]
    predictions: dict[int, Prediction] = {}
    if with_content:
        found = classifier.predict([texts[i] for i in with_content])
        predictions = dict(zip(with_content, found, strict=True))
    results = []
    for index, text in enumerate(texts):
        prediction = predictions.get(index)
        if prediction is None:
            # Empty or emoji-only text: nothing to classify, every score zero.
            prediction = Prediction((), dict.fromkeys(classifier.labels, 0.0), False)
        results.append(_combine(text, prediction, detect(text)))
    return results


def tag(text: str, model: TextClassifier | None = None) -> TagResult:
    """Tag one text with the default risk model (or `model`): categories with scores, uncertain,
    urgent signals with their spans, and the de-identified text."""
    return tag_many([text], model)[0]
