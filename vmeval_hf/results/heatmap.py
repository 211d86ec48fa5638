"""The leaderboard as a picture: one heatmap per evaluator, models x domains (and overall).

Each cell is coloured by success rate (red 0% -> yellow 50% -> green 100%; grey where nothing
was scored) and says the rate and successes/scored. Drawn with Pillow and its bundled font, so
the same leaderboard gives the same PNG bytes (for the same Pillow version).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PAD = 12
CELL_H = 42
MIN_CELL_W = 84
GAP = 8  # between the domains and the overall column
FONT_SIZE, SMALL_SIZE, TITLE_SIZE = 14, 12, 15
WHITE, BLACK, GREY, NONE_FILL = (255, 255, 255), (20, 20, 20), (110, 110, 110), (225, 225, 225)
#: red, yellow, green (ColorBrewer RdYlGn ends and middle)
STOPS = ((215, 48, 39), (254, 224, 139), (26, 152, 80))

Font = Any  # ImageFont.FreeTypeFont, or the bitmap default on a Pillow without FreeType


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def colour(rate: float | None) -> tuple[int, int, int]:
    """The fill of a cell with success rate ``rate`` (None: nothing scored)."""
    if rate is None:
        return NONE_FILL
    low, high, t = (STOPS[0], STOPS[1], rate * 2) if rate <= 0.5 else (STOPS[1], STOPS[2], rate * 2 - 1)
    return tuple(round(a + (b - a) * t) for a, b in zip(low, high))  # type: ignore[return-value]


def _ink(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return BLACK if luminance > 140 else WHITE


def _centred(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font: Font,
             fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=font, fill=fill, anchor="mm")


def _panel(table: dict[str, Any], fonts: dict[str, Font]) -> tuple[list[str], list[str], int, int]:
    """(column names, row names, label column width, cell width) of one evaluator's panel."""
    columns = [*table["domains"], "overall"]
    rows = [m["model"] for m in table["models"]]
    label_w = int(max(fonts["text"].getlength(r) for r in rows)) + 2 * PAD
    cell_w = max(MIN_CELL_W, int(max(fonts["text"].getlength(c) for c in columns)) + PAD)
    return columns, rows, label_w, cell_w


def _title(table: dict[str, Any], min_score: int) -> str:
    return f"{table['evaluator']}: success rate (score {min_score}-5), successes/scored"


def _x(i: int, n: int, label_w: int, cell_w: int) -> int:
    """Left edge of column ``i`` of ``n`` (the last, overall, set apart)."""
    return label_w + i * cell_w + (GAP if i == n - 1 else 0)


def _draw_panel(draw: ImageDraw.ImageDraw, table: dict[str, Any], y: int, fonts: dict[str, Font],
                min_score: int) -> int:
    columns, _, label_w, cell_w = _panel(table, fonts)
    draw.text((PAD, y), _title(table, min_score), font=fonts["title"], fill=BLACK)
    y += TITLE_SIZE + PAD
    for i, name in enumerate(columns):
        x = _x(i, len(columns), label_w, cell_w)
        _centred(draw, (x, y, x + cell_w, y + FONT_SIZE + 6), name, fonts["text"], BLACK)
    y += FONT_SIZE + 10
    for model in table["models"]:
        draw.text((PAD, y + CELL_H / 2), model["model"], font=fonts["text"], fill=BLACK, anchor="lm")
        cells = [model["domains"][d] for d in table["domains"]] + [model["overall"]]
        for i, c in enumerate(cells):
            x = _x(i, len(cells), label_w, cell_w)
            fill = colour(c["success_rate"])
            draw.rectangle((x + 1, y + 1, x + cell_w - 1, y + CELL_H - 1), fill=fill)
            if c["scored"]:
                _centred(draw, (x, y + 3, x + cell_w, y + CELL_H // 2 + 2), f"{100 * c['success_rate']:.0f}%",
                         fonts["text"], _ink(fill))
                _centred(draw, (x, y + CELL_H // 2, x + cell_w, y + CELL_H - 3), f"{c['successes']}/{c['scored']}",
                         fonts["small"], _ink(fill))
            else:
                _centred(draw, (x, y, x + cell_w, y + CELL_H), "n/a", fonts["small"], GREY)
        y += CELL_H
    return y + PAD


def _draw_legend(draw: ImageDraw.ImageDraw, y: int, fonts: dict[str, Font]) -> None:
    x = PAD
    draw.text((x, y + 6), "0%", font=fonts["small"], fill=BLACK, anchor="lm")
    x += int(fonts["small"].getlength("0%")) + 6
    for i in range(200):
        draw.line((x + i, y, x + i, y + 12), fill=colour(i / 199))
    x += 206
    draw.text((x, y + 6), "100%", font=fonts["small"], fill=BLACK, anchor="lm")
    x += int(fonts["small"].getlength("100%")) + 18
    draw.rectangle((x, y, x + 24, y + 12), fill=NONE_FILL)
    draw.text((x + 30, y + 6), "nothing scored", font=fonts["small"], fill=BLACK, anchor="lm")


def heatmap_png(board: dict[str, Any]) -> bytes:
    """The PNG bytes of the leaderboard ``board`` (:func:`~vmeval_hf.results.leaderboard.leaderboard`)."""
    fonts = {"text": _font(FONT_SIZE), "small": _font(SMALL_SIZE), "title": _font(TITLE_SIZE)}
    width, height = 420, PAD + 12 + PAD  # the legend
    for table in board["evaluators"]:
        columns, rows, label_w, cell_w = _panel(table, fonts)
        title_w = int(fonts["title"].getlength(_title(table, board["success_min_score"])))
        width = max(width, label_w + len(columns) * cell_w + GAP + PAD, title_w + 2 * PAD)
        height += TITLE_SIZE + PAD + FONT_SIZE + 10 + len(rows) * CELL_H + PAD
    im = Image.new("RGB", (width, height + PAD), WHITE)
    draw = ImageDraw.Draw(im)
    y = PAD
    for table in board["evaluators"]:
        y = _draw_panel(draw, table, y, fonts, board["success_min_score"])
    _draw_legend(draw, y, fonts)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
