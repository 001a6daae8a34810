"""Risk levels: the probability × impact matrix, opposition-rate bands, and the proposed overall level.

The rules are data (a versioned LevelRules row), each with the note of where it comes from; the software
proposes a level and shows how, an assessor confirms or overrides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LEVELS = ("low", "medium", "high")
LEVEL_NAMES = {"low": "低", "medium": "中", "high": "高"}
_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# Rows: probability 1..5; columns: impact 1..5.
DEFAULT_MATRIX = [
    ["low", "low", "low", "low", "medium"],
    ["low", "low", "medium", "medium", "medium"],
    ["low", "medium", "medium", "medium", "high"],
    ["low", "medium", "medium", "high", "high"],
    ["medium", "medium", "high", "high", "high"],
]

DEFAULT_RULES: dict[str, Any] = {
    "opposition_bands": [{"above": 0.5, "level": "high"}, {"above": 0.2, "level": "medium"}],
    "opposition_source": (
        "江苏省地方标准 DB32/T 4013-2021 的做法（据公开报道，未核实原文）：反对率超过50%为高风险，"
        "20%至50%为中风险，其余为低风险。"
    ),
    "matrix": DEFAULT_MATRIX,
    "matrix_source": "常见的5×5风险概率—影响矩阵（各地做法不一，按本地规定调整）。",
    # "keep": the opposition band still counts after mitigation; "ignore": only residual item levels do.
    "opposition_after_mitigation": "keep",
    "overall_source": (
        "国家发展改革委《重大固定资产投资项目社会稳定风险评估暂行办法》（发改投资〔2012〕2492号）："
        "高风险——大部分群众有意见、反应特别强烈，可能引发大规模群体性事件；中风险——部分群众有意见、"
        "反应强烈，可能引发矛盾冲突；低风险——多数群众理解支持但少部分人有意见，可通过有效工作防范和化解矛盾。"
        "本系统取各项规则中最高的等级作为建议，由评估人员确认或调整。"
    ),
}


class RulesError(ValueError):
    """Level rules that cannot be used, with the reason."""


def level_name(level: str) -> str:
    return LEVEL_NAMES.get(level, level)


def highest(levels: Sequence[str]) -> str:
    return max(levels, key=lambda level: _RANK[level]) if levels else "low"


def check_rules(rules: Any) -> dict[str, Any]:
    """Validated rules (a new dict); RulesError says what is wrong."""
    if not isinstance(rules, dict):
        raise RulesError("rules must be an object")
    matrix = rules.get("matrix")
    if (
        not isinstance(matrix, list)
        or len(matrix) != 5
        or any(not isinstance(row, list) or len(row) != 5 for row in matrix)
    ):
        raise RulesError("matrix must be 5 rows (probability 1–5) of 5 levels (impact 1–5)")
    if any(cell not in LEVELS for row in matrix for cell in row):
        raise RulesError(f"matrix cells must be one of {', '.join(LEVELS)}")
    bands = rules.get("opposition_bands")
    if not isinstance(bands, list) or not bands:
        raise RulesError("opposition_bands must be a non-empty list of {above, level}")
    for band in bands:
        if not isinstance(band, dict) or band.get("level") not in LEVELS:
            raise RulesError("each opposition band needs a level: low, medium or high")
        above = band.get("above")
        if isinstance(above, bool) or not isinstance(above, int | float) or not 0 <= above < 1:
            raise RulesError("each opposition band needs `above`, a rate from 0 to 1")
    for key in ("opposition_source", "matrix_source"):
        if not str(rules.get(key, "")).strip():
            raise RulesError(f"{key} must say where the rule comes from")
    after = rules.get("opposition_after_mitigation", "keep")
    if after not in ("keep", "ignore"):
        raise RulesError("opposition_after_mitigation must be keep or ignore")
    return {**rules, "opposition_after_mitigation": after}


def item_level(rules: dict[str, Any], probability: int, impact: int) -> str:
    if not (1 <= probability <= 5 and 1 <= impact <= 5):
        raise RulesError("probability and impact are 1 to 5")
    return str(rules["matrix"][probability - 1][impact - 1])


def opposition_level(rules: dict[str, Any], rate: float) -> tuple[str, str]:
    """The band's level for an opposition rate, and the band in words."""
    for band in sorted(rules["opposition_bands"], key=lambda b: -float(b["above"])):
        if rate > float(band["above"]):
            return str(band["level"]), f"反对率 {rate:.1%} > {float(band['above']):.0%}"
    lowest = min(float(b["above"]) for b in rules["opposition_bands"])
    return "low", f"反对率 {rate:.1%} ≤ {lowest:.0%}"


@dataclass(frozen=True, slots=True)
class ItemEstimate:
    label: str  # "R-001 征地拆迁补偿安置"
    level: str
    residual: str
    probability: int
    impact: int
    residual_probability: int | None
    residual_impact: int | None


@dataclass(frozen=True, slots=True)
class Proposal:
    """The proposed level before and after mitigation and every step that led there."""

    before: str
    after: str
    steps: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "steps": list(self.steps)}


def propose(
    rules: dict[str, Any], opposition_rate: float | None, answered: int, items: Sequence[ItemEstimate]
) -> Proposal:
    steps: list[str] = []
    before_levels: list[str] = []
    after_levels: list[str] = []
    if opposition_rate is None or answered == 0:
        steps.append("规则一（反对率）：尚无群众回答态度题，本规则不计。")
    else:
        level, words = opposition_level(rules, opposition_rate)
        steps.append(
            f"规则一（反对率）：{answered} 份有效回答中，{words} → {level_name(level)}。"
            f"依据：{rules['opposition_source']}"
        )
        before_levels.append(level)
        if rules.get("opposition_after_mitigation", "keep") == "keep":
            after_levels.append(level)
            steps.append("　措施落实后仍按群众态度计（规则设定：keep）。")
        else:
            steps.append("　措施落实后不再按群众态度计（规则设定：ignore）。")
    if items:
        top = max(items, key=lambda i: _RANK[i.level])
        steps.append(
            f"规则二（概率×影响矩阵）：{len(items)} 个风险项中最高为 {top.label}"
            f"（概率{top.probability}×影响{top.impact}）→ {level_name(top.level)}。"
            f"依据：{rules['matrix_source']}"
        )
        before_levels.append(top.level)
        top_after = max(items, key=lambda i: _RANK[i.residual])
        steps.append(f"　措施落实后最高为 {top_after.label} → {level_name(top_after.residual)}。")
        after_levels.append(top_after.residual)
    else:
        steps.append("规则二（概率×影响矩阵）：风险清单为空，本规则不计。")
    before, after = highest(before_levels), highest(after_levels)
    steps.append(f"结论：取各规则最高等级，措施落实前 {level_name(before)}，落实后 {level_name(after)}。")
    return Proposal(before, after, tuple(steps))
