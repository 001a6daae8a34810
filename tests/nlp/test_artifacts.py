"""Saved models: round trip with metadata, and loud refusal of other library versions or changed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp import artifacts
from nlp.classifier import ClassifierConfig, TextClassifier, fit_multiclass
from tests.nlp.conftest import TOPICS


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[TextClassifier, Path]:
    texts = [t for items in TOPICS.values() for t in items]
    labels = [label for label, items in TOPICS.items() for _ in items]
    model, report = fit_multiclass(texts, labels, ClassifierConfig(word_ngrams=(1, 1), min_df=1), folds=3)
    folder = tmp_path_factory.mktemp("artifacts") / "topics"
    artifacts.save(model, folder, data_hash="abc123", report=report)
    return model, folder


def test_round_trip_with_metadata(saved: tuple[TextClassifier, Path]) -> None:
    model, folder = saved
    loaded, info = artifacts.load(folder)
    assert loaded.labels == model.labels
    assert loaded.predict_one("医院排队太久").labels == ("医疗",)
    data = info.data
    assert sorted(data["labels"]) == sorted(["交通", "教育", "医疗"])
    assert data["data_hash"] == "abc123"
    assert data["multilabel"] is False
    assert data["libraries"]["scikit-learn"] == artifacts.library_versions()["scikit-learn"]
    assert data["cv"]["macro_f1"] > 0 and data["cv"]["folds"] == 3
    assert "created" in data and "thresholds" in data and "config" in data


def _copy(folder: Path, target: Path) -> Path:
    target.mkdir()
    for name in (artifacts.MODEL_FILE, artifacts.META_FILE):
        (target / name).write_bytes((folder / name).read_bytes())
    return target


def test_other_scikit_learn_version_is_refused(saved: tuple[TextClassifier, Path], tmp_path: Path) -> None:
    copy = _copy(saved[1], tmp_path / "old")
    meta = json.loads((copy / artifacts.META_FILE).read_text("utf-8"))
    meta["libraries"]["scikit-learn"] = "0.24.2"
    (copy / artifacts.META_FILE).write_text(json.dumps(meta), "utf-8")
    with pytest.raises(artifacts.ArtifactVersionError, match=r"scikit-learn 0\.24\.2.*retrain"):
        artifacts.load(copy)


def test_changed_model_file_is_refused(saved: tuple[TextClassifier, Path], tmp_path: Path) -> None:
    copy = _copy(saved[1], tmp_path / "changed")
    (copy / artifacts.MODEL_FILE).write_bytes(b"not a pickle")
    with pytest.raises(artifacts.ArtifactError, match="checksum"):
        artifacts.load(copy)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(artifacts.ArtifactError, match="not a model directory"):
        artifacts.load(tmp_path)


def test_saving_over_an_existing_model_replaces_it(
    saved: tuple[TextClassifier, Path], tmp_path: Path
) -> None:
    model, _ = saved
    folder = tmp_path / "m"
    artifacts.save(model, folder, data_hash="one")
    artifacts.save(model, folder, data_hash="two")
    assert artifacts.read_info(folder).data["data_hash"] == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
