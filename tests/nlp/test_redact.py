"""Redaction: each kind of personal detail is masked, look-alikes are left alone."""

from __future__ import annotations

import pytest

from nlp.redact import MASKS, redact, valid_id_number, valid_luhn

ID = "11010519491231002X"  # the GB 11643 specimen number, valid check character
CARD = "6222020200112233445"


def _luhn_complete(prefix: str) -> str:
    for digit in "0123456789":
        if valid_luhn(prefix + digit):
            return prefix + digit
    raise AssertionError


@pytest.mark.parametrize(
    ("text", "kind", "hidden"),
    [
        ("我的电话13812345678，随时联系", "mobile", "13812345678"),
        ("手机：138-1234-5678", "mobile", "1234"),
        ("+86 139 1234 5678", "mobile", "5678"),
        ("座机0731-84567890找我", "landline", "84567890"),
        ("电话(010)62345678", "landline", "62345678"),
        (f"身份证{ID}", "id_number", ID),
        ("车牌湘A12345的渣土车天天超速", "plate", "A12345"),
        ("新能源车粤B·D12345", "plate", "D12345"),
        ("我住人民路25号3栋2单元301室", "address", "301"),
        ("幸福小区5-2-301的业主", "address", "5-2-301"),
        ("我叫张三，反映个问题", "name", "张三"),
        ("本人姓王，是被拆迁户", "name", "王"),
        ("联系人：欧阳娜娜", "name", "欧阳娜娜"),
    ],
)
def test_masks_each_kind(text: str, kind: str, hidden: str) -> None:
    result = redact(text)
    assert kind in result.kinds
    assert hidden not in result.text
    assert MASKS[kind] in result.text


def test_bank_card_with_luhn_check() -> None:
    card = _luhn_complete("622202020011223344")
    result = redact(f"补偿款打到卡号{card}里")
    assert result.kinds == ("bank_card",)
    assert card not in result.text


def test_checks_reject_look_alikes() -> None:
    assert valid_id_number(ID)
    assert not valid_id_number("110105194912310021")
    wrong_card = _luhn_complete("622202020011223344")[:-1] + "0"
    if valid_luhn(wrong_card):
        wrong_card = wrong_card[:-1] + "1"
    assert "bank_card" not in redact(f"卡号{wrong_card}").kinds
    assert "id_number" not in redact("身份证110105194912310021").kinds


@pytest.mark.parametrize(
    "text",
    [
        "补偿款2000000元，每平3800，2023年5月签的",
        "我是高中老师，支持建学校",
        "老百姓反映的问题要重视",
        "住3楼，噪音很大",
        "订单号202312010000123456789",
        "",
        "😡😡",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.masked == ()


def test_spans_refer_to_the_original_and_several_kinds_mix() -> None:
    text = f"我叫李四，电话13912345678，身份证{ID}"
    result = redact(text)
    assert [m.kind for m in result.masked] == ["name", "mobile", "id_number"]
    assert [text[m.start : m.end] for m in result.masked] == ["李四", "13912345678", ID]
    assert result.text == "我叫[姓名]，电话[手机号]，身份证[身份证号]"


def test_long_text() -> None:
    text = "补偿太低了。" * 2000 + "电话13812345678"
    result = redact(text)
    assert len(text) > 10_000 and result.text.endswith("电话[手机号]")
