"""Classifiers: multi-class on a small topic set, multi-label thresholds and the review flag."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from nlp.classifier import ClassifierConfig, Prediction, TextClassifier, fit_multiclass, fit_multilabel
from tests.nlp.conftest import TOPICS

FAST = ClassifierConfig(word_ngrams=(1, 1), char_ngrams=(1, 2), min_df=1, char_min_df=1)


def _topic_data() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, items in TOPICS.items():
        texts += items
        labels += [label] * len(items)
    return texts, labels


@pytest.fixture(scope="module")
def topic_model() -> TextClassifier:
    texts, labels = _topic_data()
    model, report = fit_multiclass(texts, labels, FAST, folds=3)
    assert report.n_examples == 30 and report.accuracy is not None
    assert report.macro_f1 > 0.6
    return model


def test_multiclass_predicts_unseen_texts(topic_model: TextClassifier) -> None:
    assert set(topic_model.labels) == {"交通", "教育", "医疗"}
    found = topic_model.predict(
        ["公交车站太远，等车等半天", "孩子的学校要撤并，上学更远了", "医院看病挂号太难"]
    )
    assert [p.labels for p in found] == [("交通",), ("教育",), ("医疗",)]


def test_multiclass_scores_are_probabilities(topic_model: TextClassifier) -> None:
    prediction = topic_model.predict_one("医保报销太少")
    assert set(prediction.scores) == {"交通", "教育", "医疗"}
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert prediction.scores["医疗"] == max(prediction.scores.values())


def test_fitted_model_pickles(topic_model: TextClassifier) -> None:
    again = pickle.loads(pickle.dumps(topic_model))
    assert again.predict_one("路口太堵").labels == topic_model.predict_one("路口太堵").labels


def test_multiclass_needs_enough_examples_per_label() -> None:
    with pytest.raises(ValueError, match="too few"):
        fit_multiclass(["甲", "乙", "丙", "丁"], ["a", "a", "a", "b"], FAST, folds=3)
    with pytest.raises(ValueError, match="two different"):
        fit_multiclass(["甲", "乙", "丙"], ["a", "a", "a"], FAST, folds=3)


def test_multilabel_thresholds_and_scores() -> None:
    texts, rows = [], []
    noise = ["施工噪音太大", "晚上打桩睡不着", "粉尘到处都是", "工地臭味熏人", "夜间施工吵死了"]
    money = ["补偿款太低", "安置房没着落", "过渡费拖欠", "评估价不合理", "拆迁补偿不公平"]
    for i in range(5):
        texts += [noise[i], money[i], noise[i] + "，" + money[i], "谢谢你们" + str(i)]
        rows += [("environment",), ("compensation",), ("environment", "compensation"), ()]
    model, report = fit_multilabel(texts, rows, ["environment", "compensation"], FAST, folds=3)
    assert set(model.thresholds) == {"environment", "compensation"}
    assert all(0.1 <= t <= 0.9 for t in model.thresholds.values())
    assert 0.0 <= report.micro_f1 <= 1.0
    both = model.predict_one("噪音太大，补偿也太低")
    assert set(both.labels) == {"environment", "compensation"}
    assert all(0.0 <= s <= 1.0 for s in both.scores.values())


def test_multilabel_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="not in the label set"):
        fit_multilabel(["甲"] * 5, [("x",)] * 5, ["y"], FAST, folds=3)


def test_uncertain_when_the_best_score_is_near_its_threshold() -> None:
    model = TextClassifier.__new__(TextClassifier)
    model.labels = ("a", "b")
    model.multilabel = True
    model.thresholds = {"a": 0.5, "b": 0.4}
    model.config = ClassifierConfig(review_margin=0.1)
    decide = model._decide
    assert decide(np.array([0.52, 0.1])) == Prediction(("a",), {"a": 0.52, "b": 0.1}, True)
    assert decide(np.array([0.9, 0.1])).uncertain is False
    assert decide(np.array([0.05, 0.02])) == Prediction((), {"a": 0.05, "b": 0.02}, False)
    assert decide(np.array([0.2, 0.35])).uncertain is True


def test_single_matrix_scores_equal_the_pipeline_scores(topic_model: TextClassifier) -> None:
    from nlp.classifier import _decisions, calibrated

    texts = ["公交太少", "学校太远", "看病太贵", ""]
    slow = calibrated(_decisions(topic_model.pipeline, texts, 3), topic_model.platt, multilabel=False)
    assert np.allclose(topic_model.scores(texts), slow)


def test_two_label_single_label_data() -> None:
    texts = ["公交车太少了", "路口太堵了", "地铁太挤了", "医院排队太久", "看病太贵了", "医保报销太少"]
    labels = ["交通"] * 3 + ["医疗"] * 3
    model, _ = fit_multiclass(texts * 2, labels * 2, FAST, folds=3)
    assert model.predict_one("公交车太挤").labels == ("交通",)
    assert model.scores(["医院看病"]).shape == (1, 2)
