"""Shared fixtures: the risk model built once per test session into a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nlp import pipeline
from nlp.classifier import TextClassifier

# Small labelled texts for the multi-class paths (CLI train/eval, artifacts): three clearly different topics.
TOPICS: dict[str, list[str]] = {
    "交通": [
        "公交车太少了，早上等车要半个小时",
        "路口红绿灯时间太短，老人过马路很危险",
        "地铁站出口离小区太远，走路要二十分钟",
        "停车位太少，晚上回来车都没地方停",
        "这条路天天堵车，上班经常迟到",
        "高速出口的指示牌看不清，老是走错路",
        "公交线路改了也不通知，站台空等一上午",
        "大货车在村道上开得飞快，路都压坏了",
        "出租车拒载，打车太难了",
        "十字路口没有斑马线，孩子上学过马路不安全",
    ],
    "教育": [
        "学校离家太远，孩子上学要走一个小时",
        "幼儿园收费太贵，一个月要三千多",
        "老师布置的作业太多，孩子天天写到半夜",
        "学区划分不合理，我们小区分到了最差的学校",
        "学校食堂的饭菜不卫生，孩子吃了拉肚子",
        "中考招生政策变来变去，家长都糊涂了",
        "乡村小学撤并以后，孩子只能去镇上住校",
        "课外培训班乱收费，退费也退不了",
        "教室里的空调坏了一个学期都没人修",
        "学校操场被占用了，孩子们没地方上体育课",
    ],
    "医疗": [
        "医院挂号排队要排三个小时，看病太难",
        "社区卫生院没有儿科医生，孩子发烧只能跑市里",
        "医保报销比例太低，住一次院花光积蓄",
        "药店的药价比网上贵一倍",
        "医生态度很差，问两句就不耐烦",
        "村卫生室常年关门，老人拿药都没地方",
        "急诊科人满为患，走廊里都躺着病人",
        "体检中心的报告出得太慢，等了半个月",
        "新农合的缴费标准年年涨，负担太重",
        "医院停车场收费太贵，看个病停车费几十块",
    ],
}


def write_topics_csv(path: Path) -> Path:
    import csv

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for label, texts in TOPICS.items():
            for text in texts:
                writer.writerow([text, label])
    return path


@pytest.fixture(scope="session")
def risk_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextClassifier]:
    """The default risk model, built from the seed corpus once per session in a temporary MINYI_MODEL_DIR."""
    folder = tmp_path_factory.mktemp("model") / "risk"
    patch = pytest.MonkeyPatch()
    patch.setenv("MINYI_MODEL_DIR", str(folder))
    pipeline.set_default_model(None)
    try:
        model = pipeline.default_model()
        yield model
    finally:
        pipeline.set_default_model(None)
        patch.undo()
