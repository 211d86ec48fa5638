"""Drawing helpers shared by the generators: canvases, fonts, text, markers, PNG bytes.

Everything here is deterministic: the font is Pillow's bundled default (no system
fonts), drawing is integer/IEEE arithmetic, and PNGs are written without metadata,
timestamps or optimisation passes, so the same picture always gives the same bytes
with the same Pillow build.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Point = tuple[float, float]

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
INK: RGB = (31, 41, 55)  # near-black for lines and text
GREEN: RGB = (34, 197, 94)  # upstream's start dot, #22c55e
RED: RGB = (239, 68, 68)  # upstream's goal flag, #ef4444
BROWN: RGB = (120, 72, 32)
BLUE: RGB = (29, 78, 216)

#: Supersampling factor: shapes are drawn this much larger, then downsampled (anti-aliasing).
SS = 3


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px (deterministic, no system fonts)."""
    return ImageFont.load_default(size=size)


class Canvas:
    """An RGB image drawn at ``SS`` times its final size; :meth:`image` downsamples it.

    Coordinates passed to the helpers are in *final* pixels and scaled here, so
    generators think in output pixels and still get smooth edges.
    """

    def __init__(self, width: int, height: int, background: RGB = WHITE, scale: int = SS) -> None:
        self.width, self.height, self.scale = width, height, scale
        self.img = Image.new("RGB", (width * scale, height * scale), background)
        self.draw = ImageDraw.Draw(self.img)

    def s(self, v: float) -> int:
        return round(v * self.scale)

    def pts(self, points: Sequence[Point]) -> list[tuple[int, int]]:
        return [(self.s(x), self.s(y)) for x, y in points]

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB | None = None,
             outline: RGB | None = None, width: float = 1) -> None:
        self.draw.rectangle((self.s(x0), self.s(y0), self.s(x1) - 1, self.s(y1) - 1), fill=fill,
                            outline=outline, width=max(1, self.s(width)) if outline else 0)

    def polygon(self, points: Sequence[Point], fill: RGB | None = None, outline: RGB | None = None,
                width: float = 1) -> None:
        self.draw.polygon(self.pts(points), fill=fill, outline=outline,
                          width=max(1, self.s(width)) if outline else 1)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float | None = None, fill: RGB | None = None,
                outline: RGB | None = None, width: float = 1) -> None:
        ry = rx if ry is None else ry
        self.draw.ellipse((self.s(cx - rx), self.s(cy - ry), self.s(cx + rx), self.s(cy + ry)), fill=fill,
                          outline=outline, width=max(1, self.s(width)) if outline else 0)

    def line(self, points: Sequence[Point], fill: RGB = INK, width: float = 1) -> None:
        self.draw.line(self.pts(points), fill=fill, width=max(1, self.s(width)), joint="curve")

    def text(self, cx: float, cy: float, text: str, size: int, fill: RGB = INK) -> None:
        """Draw ``text`` centred on (cx, cy)."""
        self.draw.text((self.s(cx), self.s(cy)), text, font=font(size * self.scale), fill=fill, anchor="mm")

    def image(self) -> Image.Image:
        if self.scale == 1:
            return self.img.copy()
        # A box-filter reduce is exact area averaging: the right filter for supersampling, and fast.
        return self.img.reduce(self.scale)


def regular_polygon(cx: float, cy: float, r: float, sides: int, rotation_deg: float = 0.0) -> list[Point]:
    """Vertices of a regular polygon with one vertex pointing up, turned clockwise by ``rotation_deg``."""
    out = []
    for k in range(sides):
        a = math.radians(rotation_deg + 360.0 * k / sides - 90.0)
        out.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return out


def rotate_points(points: Sequence[Point], cx: float, cy: float, rotation_deg: float) -> list[Point]:
    """Turn points clockwise (on screen) about (cx, cy)."""
    a = math.radians(rotation_deg)
    c, s = math.cos(a), math.sin(a)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def draw_dot(canvas: Canvas, cx: float, cy: float, r: float, fill: RGB = GREEN) -> None:
    canvas.ellipse(cx, cy, r, fill=fill, outline=INK, width=max(1.0, r / 8))


def draw_flag(canvas: Canvas, cx: float, cy: float, size: float) -> None:
    """A goal flag (brown pole, red pennant) standing in a box of ``size`` centred on (cx, cy)."""
    pole_x = cx - size * 0.18
    top, bottom = cy - size * 0.42, cy + size * 0.42
    canvas.rect(pole_x - size * 0.04, top, pole_x + size * 0.04, bottom, fill=BROWN)
    canvas.polygon([(pole_x + size * 0.04, top), (pole_x + size * 0.5, top + size * 0.18),
                    (pole_x + size * 0.04, top + size * 0.36)], fill=RED, outline=INK, width=max(1.0, size / 40))
    canvas.rect(pole_x - size * 0.16, bottom - size * 0.05, pole_x + size * 0.16, bottom, fill=BROWN)


def png_bytes(img: Image.Image) -> bytes:
    """Encode as PNG deterministically: RGB, no metadata chunks, no optimiser, fixed zlib level."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
