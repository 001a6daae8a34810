"""Reading labelled files and texts to tag; the seed corpus and its fixed held-out split."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nlp import taxonomy
from nlp.corpus import CorpusError, is_heldout, load_file, load_seed, read_texts, seed_split
from nlp.escalation import SIGNAL_TYPES


def test_csv_single_label(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"路太堵了，天天迟到",交通\n学校太远,教育\n', encoding="utf-8")
    data = load_file(path)
    assert not data.multilabel
    assert data.texts == ["路太堵了，天天迟到", "学校太远"]
    assert data.labels == [("交通",), ("教育",)]


def test_csv_multi_label_with_semicolons_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,labels\n补偿太低还不公示,compensation;disclosure\n谢谢,\n", encoding="utf-8")
    data = load_file(path)
    assert data.multilabel
    assert data.labels == [("compensation", "disclosure"), ()]


def test_jsonl_categories(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"text": "噪音大", "categories": ["environment"]}, {"text": "支持", "categories": []}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    data = load_file(path)
    assert data.multilabel and data.labels == [("environment",), ()]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", '{"text": "x", "categories": ["a"]}\n{"text": \n', "a.jsonl:2"),
        ("b.jsonl", '{"words": "x"}\n', "b.jsonl:1"),
        ("c.csv", "words,label\nx,y\n", "'text' column"),
        ("d.csv", "text,tag\nx,y\n", "'label' or a 'labels'"),
        ("e.txt", "x\n", ".csv or .jsonl"),
        ("f.csv", "text,label\n", "no examples"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_file(path)


def test_missing_file() -> None:
    with pytest.raises(CorpusError, match="no such file"):
        load_file("/nonexistent/data.csv")


def test_read_texts_sniffs_plain_csv_and_jsonl() -> None:
    assert read_texts(io.StringIO("第一条\n\n第二条\n")) == ["第一条", "第二条"]
    assert read_texts(io.StringIO('id,text\n1,噪音大\n2,"补偿低,没公示"\n')) == ["噪音大", "补偿低,没公示"]
    assert read_texts(io.StringIO('{"text": "甲"}\n{"text": "乙", "id": 2}\n')) == ["甲", "乙"]
    with pytest.raises(CorpusError, match="input:1"):
        read_texts(io.StringIO('{"body": "甲"}\n'))


def test_heldout_split_is_stable_and_about_a_fifth() -> None:
    seed = load_seed()
    train, held = seed_split(seed)
    assert len(train.examples) + len(held.examples) == len(seed.examples)
    assert 0.14 < len(held.examples) / len(seed.examples) < 0.26
    assert all(is_heldout(e.text) for e in held.examples)
    # Traditional, full-width or re-spaced copies of a text fall on the same side.
    assert is_heldout("補償太低 ！") == is_heldout("补偿太低!")


def test_seed_labels_are_taxonomy_codes_and_signal_types() -> None:
    codes, kinds = set(taxonomy.codes()), set(SIGNAL_TYPES)
    for example in load_seed().examples:
        assert set(example.labels) <= codes, example
        assert set(example.signals) <= kinds, example


def test_seed_partial_last_line_is_tolerated(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        '{"text": "甲", "categories": ["media"]}\n{"text": "乙", "cate', "utf-8"
    )
    assert [e.text for e in load_seed(tmp_path).examples] == ["甲"]
