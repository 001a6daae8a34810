"""Urgent-signal rules: every signal type, negation, conditional threats, spans, and the seed corpus."""

from __future__ import annotations

import pytest

from nlp.corpus import load_seed
from nlp.escalation import SIGNAL_TYPES, detect


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("不给个说法，我们全村就集体上访", "collective_petition"),
        ("实在不行就去北京告他们", "collective_petition"),
        ("明天大家一起去镇政府门口讨说法", "gathering"),
        ("几百人把项目部围了", "gathering"),
        ("再不解决就去堵路", "blocking"),
        ("渣土车来一辆我们拦一辆", "blocking"),
        ("我们去县委门口静坐，拉横幅", "sit_in"),
        ("每户出一个人，明天一起去", "mobilising"),
        ("已经建群拉人了，人越多越好", "mobilising"),
        ("补偿不到位，谁也别想动工", "obstructing_works"),
        ("挖掘机敢来我们就躺在前面", "obstructing_works"),
        ("逼急了我就跟他们拼了", "violence"),
        ("我带着汽油去，大不了同归于尽", "violence"),
        ("房子没了我也不想活了", "self_harm"),
        ("再不给钱我就喝农药死给他们看", "self_harm"),
        ("I don't want to live anymore，补偿太少", "self_harm"),
        ("拍了视频准备发抖音，让它上热搜", "media_escalation"),
        ("我要找记者曝光你们", "media_escalation"),
    ],
)
def test_each_signal_type_is_found(text: str, kind: str) -> None:
    result = detect(text)
    assert result.urgent
    assert kind in result.signals


def test_signal_types_are_exactly_the_nine() -> None:
    assert SIGNAL_TYPES == (
        "collective_petition", "gathering", "blocking", "sit_in", "mobilising",
        "obstructing_works", "violence", "self_harm", "media_escalation",
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "我们不想上访，只想把补偿谈清楚",
        "我们不会去堵路的，放心",
        "大家都很理性，没有人说要去拉横幅",
        "我们不会去聚集闹事，就是希望有人来讲清楚",
        "补偿太低了，希望再研究一下",
        "封路三个月了，每天绕路上班",
        "孩子跳楼梯玩摔了一跤",
        "谢谢政府修了这条路",
        "",
        "😀😀😀",
    ],
)
def test_negated_and_ordinary_texts_are_not_urgent(text: str) -> None:
    assert not detect(text).urgent, detect(text).matches


@pytest.mark.parametrize(
    "text",
    [
        "再不解决就去堵路",
        "如果还不给答复，我们就去省里上访",
        "不给钱就不让施工",
        "要是再拖，大不了我跳楼",
        "我们本来不想上访，但是逼急了只能去北京",
    ],
)
def test_conditional_threats_are_urgent_and_marked(text: str) -> None:
    result = detect(text)
    assert result.urgent
    assert any(m.conditional for m in result.matches)


def test_an_a_not_a_question_is_not_a_negation() -> None:
    assert detect("大家商量要不要去上访").urgent


def test_double_negation_is_urgent() -> None:
    assert detect("看来不上访不行了").urgent


def test_long_run_of_negation_words_stays_fast() -> None:
    import time

    started = time.perf_counter()
    detect("不会去" * 3000 + "上访")
    assert time.perf_counter() - started < 2.0


def test_traditional_characters() -> None:
    result = detect("再不處理，我們就集體上訪，還要去堵路")
    assert {"collective_petition", "blocking"} <= set(result.signals)


def test_spans_point_into_the_original_text() -> None:
    text = "ＯＫ，我們 明天 去 堵路！"
    result = detect(text)
    match = next(m for m in result.matches if m.type == "blocking")
    assert text[match.start : match.end] == match.text
    assert match.text.replace(" ", "") == "堵路"


def test_self_harm_flag() -> None:
    assert detect("活不下去了").self_harm
    assert not detect("我们去堵路").self_harm


def test_long_text() -> None:
    text = "施工噪音很大。" * 1500 + "再不管我们就去堵路"
    assert len(text) > 10_000
    assert detect(text).signals == ("blocking",)


def test_every_urgent_text_of_the_seed_corpus_is_flagged_with_its_types() -> None:
    missed = []
    for example in load_seed().examples:
        if example.signals:
            found = detect(example.text).signals
            if not set(example.signals) <= set(found):
                missed.append((example.text, example.signals, found))
    assert missed == []
