"""The risk-factor taxonomy: 14 codes with Chinese names and descriptions, from nlp/data/taxonomy.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

__all__ = ["RiskCode", "codes", "get", "load"]


@dataclass(frozen=True, slots=True)
class RiskCode:
    """One risk factor: the stable code the classifier emits, its Chinese name and what it covers."""

    code: str
    name: str
    description: str
    words: tuple[str, ...]


@cache
def load() -> tuple[RiskCode, ...]:
    """All risk codes in their canonical order; validated so a broken data file fails loudly."""
    text = resources.files("nlp").joinpath("data", "taxonomy.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    entries = raw.get("codes") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError("taxonomy.yaml: expected a non-empty 'codes' list")
    result: list[RiskCode] = []
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("code", "name")):
            raise ValueError(f"taxonomy.yaml: bad entry {entry!r}")
        result.append(
            RiskCode(
                code=entry["code"],
                name=entry["name"],
                description=str(entry.get("description", "")),
                words=tuple(str(w) for w in entry.get("words", [])),
            )
        )
    seen = [c.code for c in result]
    if len(set(seen)) != len(seen):
        raise ValueError("taxonomy.yaml: duplicate codes")
    return tuple(result)


def codes() -> tuple[str, ...]:
    """The 14 codes, in canonical order: exactly the risk classifier's labels."""
    return tuple(c.code for c in load())


def get(code: str) -> RiskCode:
    """The entry for one code; KeyError names the unknown code."""
    for entry in load():
        if entry.code == code:
            return entry
    raise KeyError(code)
