"""`minyi nlp train|tag|eval` on small files made in the test."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from minyi.cli import main
from nlp.classifier import TextClassifier
from tests.nlp.conftest import write_topics_csv

KEYS = {"text", "categories", "scores", "uncertain", "urgent", "signals", "redacted"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    data = write_topics_csv(folder / "topics.csv")
    model = folder / "model"
    assert main(["nlp", "train", "--data", str(data), "--out", str(model), "--folds", "3"]) == 0
    return data, model


def test_train_writes_a_model_and_prints_cv_scores(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, model = trained
    assert (model / "model.pkl").is_file() and (model / "metadata.json").is_file()
    assert (
        main(["nlp", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--folds", "3", "--json"])
        == 0
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["cv"]["folds"] == 3 and 0 <= report["cv"]["macro_f1"] <= 1
    assert "cross-validation fold 3/3" in captured.err


def test_tag_with_a_model_reads_csv_jsonl_and_plain_lines(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = trained
    inputs = {
        "a.csv": "id,text\n1,医院挂号太难了\n2,公交车太少\n",
        "b.jsonl": '{"text": "医院挂号太难了"}\n{"text": "公交车太少"}\n',
        "c.txt": "医院挂号太难了\n公交车太少\n",
    }
    for name, content in inputs.items():
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        assert main(["nlp", "tag", "--model", str(model), "--input", str(path)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["text"] for r in rows] == ["医院挂号太难了", "公交车太少"]
        assert [r["categories"] for r in rows] == [["医疗"], ["交通"]]
        assert all(set(r) == KEYS for r in rows)


def test_tag_reads_stdin(
    trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("我叫张三，再不解决就去堵路\n"))
    assert main(["nlp", "tag", "--model", str(model)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) == KEYS
    assert row["urgent"] is True and row["signals"] == ["blocking"]
    assert row["redacted"] == "我叫[姓名]，再不解决就去堵路"


def test_tag_without_model_uses_the_risk_model(
    risk_model: TextClassifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("补偿太低，安置房没着落\n", encoding="utf-8")
    assert main(["nlp", "tag", "--input", str(path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) == KEYS
    assert "compensation" in row["categories"]
    assert len(row["scores"]) == 14


def test_eval_prints_scores_and_confusion(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, model = trained
    assert main(["nlp", "eval", "--model", str(model), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and "confusion" in out and "precision" in out
    assert main(["nlp", "eval", "--model", str(model), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] > 0.9 and len(report["confusion"]) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nlp", "train", "--data", "/nonexistent.csv", "--out", "x"], "no such file"),
        (["nlp", "tag", "--model", "/nonexistent-model"], "no such model directory"),
        (["nlp", "tag", "--input", "/nonexistent.txt", "--model", "."], "not a model directory"),
        (["nlp", "eval", "--model", "/nonexistent-model", "--data", "x.csv"], "no such model directory"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_train_on_a_file_with_too_few_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("text,label\n甲,a\n乙,b\n", encoding="utf-8")
    assert main(["nlp", "train", "--data", str(path), "--out", str(tmp_path / "m")]) == 1
    assert "too few" in capsys.readouterr().err


def test_eval_with_labels_the_model_does_not_know(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = trained
    path = tmp_path / "other.csv"
    path.write_text("text,label\n下雨了,天气\n", encoding="utf-8")
    assert main(["nlp", "eval", "--model", str(model), "--data", str(path)]) == 1
    assert "天气" in capsys.readouterr().err
