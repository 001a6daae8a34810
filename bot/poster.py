"""Printable QR posters: the deep link as a QR code, with the project title and grid name in Chinese."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from bot import texts

# A4 at 150 dpi: prints sharp on a notice board, small enough to send as a photo.
WIDTH, HEIGHT = 1240, 1754
MARGIN = 90
RED, INK, GREY = (200, 16, 46), (25, 25, 25), (110, 110, 110)
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts"), "/Library/Fonts")
FONT_NAMES = ("NotoSansCJK", "NotoSerifCJK", "SourceHanSans", "wqy-zenhei", "wqy-microhei", "simhei", "msyh")


class FontMissing(RuntimeError):
    """No font with Chinese characters on this machine."""


@functools.cache
def cjk_font(bold: bool = True) -> tuple[str, int]:
    """(file, face index) of a font that has Chinese characters: MINYI_CJK_FONT, else fontconfig, else a
    search of the usual font folders."""
    configured = os.environ.get("MINYI_CJK_FONT", "").strip()
    if configured:
        if not Path(configured).is_file():
            raise FontMissing(f"MINYI_CJK_FONT={configured} does not exist")
        return configured, 0
    found = _fontconfig_font(bold) or _scanned_font(bold)
    if found is None:
        raise FontMissing(
            "no Chinese font found; install one (e.g. `apt-get install fonts-noto-cjk`) "
            "or set MINYI_CJK_FONT to a .ttf/.otf/.ttc file"
        )
    return found


def _fontconfig_font(bold: bool) -> tuple[str, int] | None:
    if shutil.which("fc-list") is None:
        return None
    listing = subprocess.run(
        ["fc-list", ":lang=zh-cn", "file", "index", "family", "style"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout
    candidates: list[tuple[int, str, int]] = []
    for line in listing.splitlines():
        path, _, rest = line.partition(": ")
        index = int(rest.split(":index=")[1].split(":")[0]) if ":index=" in rest else 0
        score = sum(
            (
                2 * ("Sans" in rest),
                2 * (" SC" in rest or "CN" in rest),
                ("Bold" in rest) == bold,
                -3 * ("Mono" in rest),
            )
        )
        candidates.append((score, path, index))
    if not candidates:
        return None
    _, path, index = max(candidates, key=lambda c: (c[0], c[1]))
    return path, index


def _scanned_font(bold: bool) -> tuple[str, int] | None:
    for folder in FONT_DIRS:
        root = Path(folder)
        if not root.is_dir():
            continue
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttc", ".otf", ".ttf"))
        for name in FONT_NAMES:
            matches = [p for p in files if name.lower() in p.name.lower()]
            preferred = [p for p in matches if ("bold" in p.name.lower()) == bold] or matches
            if preferred:
                return str(preferred[0]), 0
    return None


def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont:
    path, index = cjk_font(bold)
    # Noto CJK collections hold the SC face at index 2; other files have a single face.
    return ImageFont.truetype(path, size, index=index)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break Chinese text anywhere (it has no spaces), keeping each line within `width` pixels."""
    lines: list[str] = []
    line = ""
    for char in text:
        if font.getlength(line + char) > width and line:
            lines.append(line)
            line = char
        else:
            line += char
    if line:
        lines.append(line)
    return lines


@functools.lru_cache(maxsize=64)
def make_poster(link: str, title: str, grid_name: str, code: str) -> bytes:
    """A PNG poster: headline band, the QR code of `link`, then title, grid name and the typed code."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    band = 260
    draw.rectangle((0, 0, WIDTH, band), fill=RED)
    headline = _font(96, bold=True)
    draw.text((WIDTH / 2, band / 2), texts.POSTER_HEADLINE, font=headline, fill="white", anchor="mm")

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=2)
    qr.add_data(link)
    qr.make(fit=True)
    size = 820
    code_image = qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    code_image = code_image.resize((size, size), Image.Resampling.NEAREST)
    top = band + 80
    image.paste(code_image, ((WIDTH - size) // 2, top))

    y = top + size + 60
    usable = WIDTH - 2 * MARGIN
    for text, font, colour, gap in (
        (title, _font(68, bold=True), INK, 18),
        (grid_name, _font(56, bold=False), INK, 40),
        (texts.POSTER_CODE.format(code=code), _font(40, bold=False), INK, 60),
        (texts.POSTER_FOOTER, _font(30, bold=False), GREY, 0),
    ):
        for line in _wrap(text, font, usable)[:3]:
            draw.text((WIDTH / 2, y), line, font=font, fill=colour, anchor="ma")
            y += int(font.size * 1.3)
        y += gap
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
