"""De-identification of free text: phone, ID and bank card numbers, licence plates, addresses and names."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["MASKS", "Masked", "Redaction", "redact", "valid_id_number", "valid_luhn"]

# What replaces each kind in the masked text: assessors still see what kind of detail was there.
MASKS: dict[str, str] = {
    "id_number": "[身份证号]",
    "bank_card": "[银行卡号]",
    "mobile": "[手机号]",
    "landline": "[电话]",
    "plate": "[车牌]",
    "address": "[地址]",
    "name": "[姓名]",
}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_number(number: str) -> bool:
    """An 18-character mainland resident ID whose check character (GB 11643) is right."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def valid_luhn(number: str) -> bool:
    """Luhn check used by bank card numbers (UnionPay included)."""
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Masked:
    """One masked detail: its kind and its span in the original text (the value itself is not kept)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Redaction:
    """The masked text and what was masked in it."""

    text: str
    masked: tuple[Masked, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.kind for m in self.masked))


_SEP = r"[ \-－—]?"
# Digits glued to other digits belong to a longer number: never mask a slice out of the middle of one.
_ID_RE = re.compile(r"(?<![0-9０-９])[0-9０-９]{17}[0-9０-９xXｘＸ](?![0-9０-９])")
_CARD_RE = re.compile(r"(?<![0-9０-９])[0-9０-９](?:[ \-]?[0-9０-９]){15,18}(?![0-9０-９])")
_MOBILE_RE = re.compile(
    r"(?<![0-9０-９])(?:(?:\+|＋)?(?:86|８６)[ \-]?)?[1１][3-9３-９][0-9０-９](?:" + _SEP + r"[0-9０-９]){8}"
    r"(?![0-9０-９])"
)
_MASKED_MOBILE_RE = re.compile(r"(?<![0-9])1[3-9][0-9][0-9xX*＊]{4}[0-9xX*＊]{4}(?![0-9])")
_LANDLINE_RE = re.compile(
    r"(?<![0-9０-９])(?:[(（][0０][0-9０-９]{2,3}[)）]|[0０][0-9０-９]{2,3}[ \-－—])[ ]?"
    r"[2-9２-９][0-9０-９xX*]{6,7}(?:[ \-－转][0-9０-９]{1,5})?(?![0-9０-９])"
)
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_RE = re.compile(
    r"[" + _PROVINCES + r"][A-HJ-NP-Za-hj-np-zＡ-Ｚ][·•・ ]?[A-HJ-NP-Za-hj-np-z0-9Ａ-Ｚ０-９]{5,6}"
    r"[挂学警港澳]?(?![A-Za-z0-9])"
)
_NUM = r"(?:[0-9０-９]+|[一二三四五六七八九十百零〇两]+)"
_UNIT = r"(?:号楼|号院|号|栋|幢|座|单元|室|户|层|楼|组|巷|弄)"
# A street or estate name directly before the number: Chinese characters, but not a verb like 住/在.
_PLACE = (
    r"[^\W\d_住在是到家的我你他她们和从往去来了也都就还要说叫]{1,8}?"
    r"(?:路|街|大街|大道|巷|弄|胡同|里|小区|花园|苑|村|社区|公寓|大厦)"
)
_ADDRESS_RE = re.compile(
    r"(?:" + _PLACE + r")?(?:" + _NUM + r"[-－~]" + _NUM + r"(?:[-－~]" + _NUM + r")?|" + _NUM + _UNIT + r")"
    r"(?:" + _NUM + _UNIT + r"|[-－]" + _NUM + r")*"
)
_ADDRESS_STRONG = re.compile(r"号|栋|幢|单元|室|户|[0-9０-９]+[-－][0-9０-９]+")
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪"
    "范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪"
    "庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房"
    "滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙"
    "荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_COMPOUND = "欧阳|司马|诸葛|上官|东方|皇甫|尉迟|公孙|慕容|长孙|令狐|夏侯|司徒|端木|独孤"
# Characters that end a name: the next word, not part of the given name.
_AFTER_NAME = "住在是家的今年岁说想要了和，,。.！!？?、；;：: 我你他她也都就还有从在来去电手身联补村"
_NAME_RE = re.compile(
    r"(?:我叫|我名叫|本人叫|名字叫|名字是|我的名字是|叫做|联系人[:：]?|签名[:：]?|我是|本人|署名[:：]?)"
    r"((?:" + _COMPOUND + r"|[" + _SURNAMES + r"])(?:某某|某|[xX×*＊]{1,2}|[^" + _AFTER_NAME + r"\W\d]{1,2}))"
    r"(?=[" + _AFTER_NAME + r"]|$)"
)
_SURNAME_RE = re.compile(r"(?:我姓|本人姓|免贵姓|(?<!百)姓)((?:" + _COMPOUND + r"|[" + _SURNAMES + r"]))")


def _digits(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit() or ch in "xX")


def _find(text: str) -> list[Masked]:
    found: list[Masked] = []
    for match in _ID_RE.finditer(text):
        if valid_id_number(_digits(match.group())):
            found.append(Masked("id_number", match.start(), match.end()))
    for match in _CARD_RE.finditer(text):
        digits = _digits(match.group())
        if 16 <= len(digits) <= 19 and valid_luhn(digits):
            found.append(Masked("bank_card", match.start(), match.end()))
    for match in _MOBILE_RE.finditer(text):
        found.append(Masked("mobile", match.start(), match.end()))
    for match in _MASKED_MOBILE_RE.finditer(text):
        found.append(Masked("mobile", match.start(), match.end()))
    for match in _LANDLINE_RE.finditer(text):
        found.append(Masked("landline", match.start(), match.end()))
    for match in _PLATE_RE.finditer(text):
        found.append(Masked("plate", match.start(), match.end()))
    for match in _ADDRESS_RE.finditer(text):
        # "3楼" or "5组" alone says little; a house number, unit or room does identify a home.
        if _ADDRESS_STRONG.search(match.group()):
            found.append(Masked("address", match.start(), match.end()))
    for match in _NAME_RE.finditer(text):
        found.append(Masked("name", match.start(1), match.end(1)))
    for match in _SURNAME_RE.finditer(text):
        found.append(Masked("name", match.start(1), match.end(1)))
    return found


def _resolve(found: list[Masked]) -> list[Masked]:
    """Keep non-overlapping spans: earlier kinds in MASKS win ties, then the longer span."""
    order = {kind: index for index, kind in enumerate(MASKS)}
    chosen: list[Masked] = []
    for item in sorted(found, key=lambda m: (order[m.kind], -(m.end - m.start), m.start)):
        if all(item.end <= c.start or item.start >= c.end for c in chosen):
            chosen.append(item)
    return sorted(chosen, key=lambda m: m.start)


def redact(text: str) -> Redaction:
    """Mask personal details so free text can leave the system (PIPL: de-identify before export)."""
    chosen = _resolve(_find(text))
    parts: list[str] = []
    position = 0
    for item in chosen:
        parts.append(text[position : item.start])
        parts.append(MASKS[item.kind])
        position = item.end
    parts.append(text[position:])
    return Redaction("".join(parts), tuple(chosen))
