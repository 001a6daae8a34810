"""The risk taxonomy data file: exactly the 14 codes of the domain, each named and described."""

from __future__ import annotations

import pytest

from nlp import taxonomy

EXPECTED = (
    "procedure",
    "compensation",
    "collective_assets",
    "environment",
    "construction_safety",
    "traffic",
    "livelihood",
    "public_services",
    "disclosure",
    "public_order",
    "media",
    "collective_action",
    "trust",
    "culture",
)


def test_codes_are_the_fourteen_domain_codes_in_order() -> None:
    assert taxonomy.codes() == EXPECTED


def test_every_code_has_a_chinese_name_and_description() -> None:
    for entry in taxonomy.load():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in entry.name)
        assert len(entry.description) >= 10
        assert entry.words


def test_lookup() -> None:
    assert taxonomy.get("compensation").name == "征地拆迁补偿安置"
    with pytest.raises(KeyError):
        taxonomy.get("weather")
