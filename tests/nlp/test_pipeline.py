"""The one-call tagging pipeline with the default risk model built from the seed corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nlp import artifacts, taxonomy
from nlp.classifier import TextClassifier
from nlp.pipeline import tag, tag_many
from nlp.train import default_model_dir

KEYS = {"text", "categories", "scores", "uncertain", "urgent", "signals", "redacted"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("补偿标准太低了，一平才给三千，安置房到现在还没着落", "compensation"),
        ("晚上十二点还在施工，噪音吵得孩子睡不着觉", "environment"),
        ("渣土车天天从村里过，我家墙都震出裂缝了", "construction_safety"),
        ("修路要迁祖坟，老人们死活不同意", "culture"),
        ("村里的征地补偿款怎么分的，账目从来不公开", "collective_assets"),
        ("封路以后要绕好远，出行太不方便了", "traffic"),
    ],
)
def test_known_texts_get_their_code(risk_model: TextClassifier, text: str, code: str) -> None:
    result = tag(text)
    assert code in result.categories, result.scores
    assert result.scores[code] >= max(result.scores.values()) - 1e-9 or code in result.categories


def test_result_shape_and_scores(risk_model: TextClassifier) -> None:
    result = tag("补偿太低，我叫张三，电话13812345678，再不解决就去堵路")
    assert set(result.to_json()) == KEYS
    assert set(result.scores) == set(taxonomy.codes())
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert result.urgent and result.signals == ("blocking",)
    assert result.redacted == "补偿太低，我叫[姓名]，电话[手机号]，再不解决就去堵路"
    assert result.matches and result.matches[0].text == "堵路"


def test_support_text_has_no_risk(risk_model: TextClassifier) -> None:
    result = tag("非常支持修这条路，谢谢政府")
    assert result.categories == () and not result.urgent


def test_traditional_characters_tag_like_simplified(risk_model: TextClassifier) -> None:
    simplified = tag("补偿标准太低，安置房也没盖好，过渡费也没给")
    traditional = tag("補償標準太低，安置房也沒蓋好，過渡費也沒給")
    assert traditional.categories == simplified.categories
    assert traditional.scores == simplified.scores


@pytest.mark.parametrize("text", ["", "   ", "😡😡😡", "！！？？"])
def test_empty_and_emoji_only(risk_model: TextClassifier, text: str) -> None:
    result = tag(text)
    assert result.categories == () and not result.urgent and not result.uncertain
    assert set(result.scores) == set(taxonomy.codes()) and not any(result.scores.values())
    assert result.redacted == text


def test_ten_thousand_characters(risk_model: TextClassifier) -> None:
    text = ("夜里施工噪音太大，" * 1200)[:10_000]
    result = tag(text)
    assert "environment" in result.categories


def test_mixed_chinese_and_english(risk_model: TextClassifier) -> None:
    result = tag("The compensation is too low 补偿太低了, 安置房 still not built, call me 13912345678")
    assert "compensation" in result.categories
    assert "[手机号]" in result.redacted


def test_tag_many_matches_tag(risk_model: TextClassifier) -> None:
    texts = ["噪音太大", "", "我们要去上访"]
    assert [r.to_json() for r in tag_many(texts)] == [tag(t).to_json() for t in texts]


def test_default_model_is_built_into_minyi_model_dir(risk_model: TextClassifier) -> None:
    folder = Path(os.environ["MINYI_MODEL_DIR"])
    info = artifacts.read_info(folder)
    assert info.labels == list(taxonomy.codes()) and info.multilabel
    assert set(info.data["thresholds"]) == set(taxonomy.codes())
    assert info.data["data_source"] == "seed" and info.data["cv"]["micro_f1"] > 0.5
    assert risk_model.labels == taxonomy.codes()


def test_default_cache_dir_is_keyed_by_data_and_versions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MINYI_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = default_model_dir()
    assert folder.parent == tmp_path / "minyi" / "models"
    assert folder.name.startswith("risk-") and artifacts.library_versions()["scikit-learn"] in folder.name
