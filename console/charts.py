"""Charts with Chinese labels: inline SVG for the console (each bar a link) and PNG for the Word file."""

from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass
from functools import cache
from html import escape

from PIL import Image, ImageDraw, ImageFont

FONT_FAMILY = "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif"
# Where Debian (fonts-noto-cjk) and other systems keep a font with simplified Chinese; index 2 of the Noto
# collection is its SC face.
FONT_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
PALETTE = ("#2f6690", "#3a7ca5", "#d9a441", "#c0392b", "#7f8c8d", "#16a085", "#8e44ad")


class ChartFontError(RuntimeError):
    """No font with Chinese characters was found, so a chart image would show empty boxes."""


@cache
def cjk_font_file() -> tuple[str, int]:
    configured = os.environ.get("MINYI_CJK_FONT", "").strip()
    if configured:
        if not os.path.isfile(configured):
            raise ChartFontError(f"MINYI_CJK_FONT={configured} is not a font file")
        return configured, 2 if configured.endswith(".ttc") and "NotoSansCJK" in configured else 0
    for path, index in FONT_CANDIDATES:
        if os.path.isfile(path):
            return path, index
    found = sorted(glob.glob("/usr/share/fonts/**/*CJK*", recursive=True))
    if found:
        return found[0], 0
    raise ChartFontError(
        "no font with Chinese characters found: install fonts-noto-cjk "
        "or set MINYI_CJK_FONT to a .ttc/.otf file"
    )


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    path, index = cjk_font_file()
    return ImageFont.truetype(path, size, index=index)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    text: str = ""  # shown after the bar, e.g. "42（31.5%）"; the value when empty
    href: str = ""  # the answers behind the bar


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    color: str = PALETTE[0]


def _shown(bar: Bar) -> str:
    return bar.text or (f"{bar.value:g}")


# --- SVG -----------------------------------------------------------------------------------------------

_ROW, _LABEL_W, _BAR_W, _VALUE_W, _TOP = 28, 230, 320, 130, 34


def svg_bars(chart: BarChart) -> str:
    """A horizontal bar chart; every label, title and link is escaped here."""
    width = _LABEL_W + _BAR_W + _VALUE_W
    height = _TOP + _ROW * max(len(chart.bars), 1) + 8
    top = max((b.value for b in chart.bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="{escape(FONT_FAMILY)}" font-size="14">',
        f"<title>{escape(chart.title)}</title>",
        f'<text x="0" y="20" font-size="16" font-weight="bold" fill="#222">{escape(chart.title)}</text>',
    ]
    if not chart.bars:
        parts.append(f'<text x="0" y="{_TOP + 18}" fill="#777">暂无数据</text>')
    for i, bar in enumerate(chart.bars):
        y = _TOP + i * _ROW
        length = max(bar.value / top * _BAR_W, 1 if bar.value else 0)
        row = (
            f'<text x="{_LABEL_W - 8}" y="{y + 18}" text-anchor="end" fill="#222">'
            f"{escape(_fit(bar.label, 15))}</text>"
            f'<rect x="{_LABEL_W}" y="{y + 4}" width="{length:.1f}" height="{_ROW - 8}" '
            f'fill="{chart.color}"/>'
            f'<text x="{_LABEL_W + length + 6:.1f}" y="{y + 18}" fill="#222">{escape(_shown(bar))}</text>'
        )
        if bar.href:
            row = (
                f'<a href="{escape(bar.href)}">'
                f"<title>{escape(bar.label)}：{escape(_shown(bar))}（查看回答）</title>"
                f"{row}</a>"
            )
        parts.append(f"<g>{row}</g>")
    parts.append("</svg>")
    return "".join(parts)


def svg_columns(title: str, points: list[tuple[str, int, str]]) -> str:
    """Columns over time: (day label, count, link)."""
    width, height, left, bottom = 620, 220, 40, 40
    top_value = max((n for _, n, _ in points), default=0) or 1
    step = (width - left - 10) / max(len(points), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="{escape(FONT_FAMILY)}" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-size="16" font-weight="bold" fill="#222">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#999"/>',
    ]
    if not points:
        parts.append(f'<text x="{left}" y="{height / 2}" fill="#777">暂无数据</text>')
    label_every = max(1, round(len(points) / 8))
    for i, (day, n, href) in enumerate(points):
        h = n / top_value * (height - bottom - 40)
        x = left + i * step
        column = (
            f'<rect x="{x + step * 0.15:.1f}" y="{height - bottom - h:.1f}" width="{step * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[1]}"><title>{escape(day)}：{n}</title></rect>'
        )
        if href:
            column = f'<a href="{escape(href)}">{column}</a>'
        parts.append(column)
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#444">'
                f"{escape(day)}</text>"
            )
    parts.append(
        f'<text x="{left - 6}" y="{height - bottom - (height - bottom - 40) + 4}" text-anchor="end" '
        f'fill="#444">{top_value}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- PNG -----------------------------------------------------------------------------------------------


def png_bars(chart: BarChart, scale: int = 2) -> bytes:
    """The same chart as a PNG image (for Word), drawn with a CJK font."""
    s = scale
    width = (_LABEL_W + _BAR_W + _VALUE_W) * s
    height = (_TOP + _ROW * max(len(chart.bars), 1) + 8) * s
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((0, 4 * s), chart.title, font=_font(16 * s), fill="#222222")
    top = max((b.value for b in chart.bars), default=0) or 1
    font = _font(14 * s)
    if not chart.bars:
        draw.text((0, (_TOP + 4) * s), "暂无数据", font=font, fill="#777777")
    for i, bar in enumerate(chart.bars):
        y = (_TOP + i * _ROW) * s
        label = _fit(bar.label, 15)
        label_width = draw.textlength(label, font=font)
        draw.text((_LABEL_W * s - 8 * s - label_width, y + 4 * s), label, font=font, fill="#222222")
        length = max(bar.value / top * _BAR_W, 1 if bar.value else 0) * s
        if length:
            draw.rectangle(
                (_LABEL_W * s, y + 4 * s, _LABEL_W * s + length, y + (_ROW - 4) * s), fill=chart.color
            )
        draw.text((_LABEL_W * s + length + 6 * s, y + 4 * s), _shown(bar), font=font, fill="#222222")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # size matters less than speed here
    return out.getvalue()


def png_columns(title: str, points: list[tuple[str, int]], scale: int = 2) -> bytes:
    s = scale
    width, height, left, bottom = 620 * s, 220 * s, 40 * s, 40 * s
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((0, 0), title, font=_font(16 * s), fill="#222222")
    small = _font(12 * s)
    draw.line((left, height - bottom, width - 5 * s, height - bottom), fill="#999999", width=s)
    top_value = max((n for _, n in points), default=0) or 1
    step = (width - left - 10 * s) / max(len(points), 1)
    label_every = max(1, round(len(points) / 8))
    for i, (day, n) in enumerate(points):
        h = n / top_value * (height - bottom - 40 * s)
        x = left + i * step
        if h:
            draw.rectangle(
                (x + step * 0.15, height - bottom - h, x + step * 0.85, height - bottom), fill=PALETTE[1]
            )
        if i % label_every == 0:
            w = draw.textlength(day, font=small)
            draw.text((x + step / 2 - w / 2, height - bottom + 4 * s), day, font=small, fill="#444444")
    label = str(top_value)
    draw.text(
        (left - 6 * s - draw.textlength(label, font=small), 40 * s - 8 * s), label, font=small, fill="#444444"
    )
    if not points:
        draw.text((left, height // 2), "暂无数据", font=_font(14 * s), fill="#777777")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # size matters less than speed here
    return out.getvalue()
