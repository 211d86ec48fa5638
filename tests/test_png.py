"""The pixel check without a decode (:func:`vmeval_hf.tree.png.pixel_problem`) against a full
decode with Pillow, on crafted PNGs of every colour type, bit depth and interlace method, and on
each way image data can be corrupt under valid chunk CRCs."""

from __future__ import annotations

import io
import os
import random
import struct
import warnings
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from tests.support.pngs import SIGNATURE, png_bomb, png_chunk
from vmeval_hf.tree.png import Header, pixel_problem, scanlines, structure_problem

DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def pillow_problem(data: bytes) -> tuple[str, str] | None:
    """What the check was before: structure, then a full decode with Pillow."""
    found = structure_problem(data)
    if found:
        return found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                im.load()
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types on bad data)
        return "bad_image", str(exc)
    return None


def raw_rows(width: int, height: int, depth: int, colour: int, interlace: int, seed: int = 0) -> bytes:
    """Image data before compression: every row a valid filter type (0-4) and random bytes,
    which any PNG decoder must accept (unfiltering accepts any byte values)."""
    rng = random.Random(seed)
    h = Header(width, height, depth, colour, interlace, [])
    out = bytearray()
    for rows, stride in scanlines(h):
        for _ in range(rows):
            out.append(rng.randrange(5))
            out += rng.randbytes(stride - 1)
    return bytes(out)


def make_png(width: int = 7, height: int = 5, depth: int = 8, colour: int = 2, interlace: int = 0, *,
             raw: bytes | None = None, stream: bytes | None = None, pieces: int = 1,
             palette: bool | None = None, after_iend: bytes = b"", ihdr: bytes | None = None,
             between_idat: bytes = b"") -> bytes:
    """A PNG with sound chunks (correct CRCs) around whatever image data is asked for."""
    raw = raw_rows(width, height, depth, colour, interlace) if raw is None else raw
    stream = zlib.compress(raw) if stream is None else stream
    header = ihdr or struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    out = SIGNATURE + png_chunk(b"IHDR", header)
    if palette if palette is not None else colour == 3:
        out += png_chunk(b"PLTE", bytes(range(256)) * 3)
    step = max(1, -(-len(stream) // pieces))
    parts = [stream[i:i + step] for i in range(0, len(stream), step)] or [b""]
    for i, part in enumerate(parts):
        out += png_chunk(b"IDAT", part)
        if i == 0 and between_idat:
            out += png_chunk(b"tEXt", between_idat)
    return out + png_chunk(b"IEND", b"") + after_iend


VALID = [(w, h, d, c, i) for c, depths in DEPTHS.items() for d in depths for i in (0, 1)
         for (w, h) in ((1, 1), (3, 5), (17, 9))]


@pytest.mark.parametrize("width,height,depth,colour,interlace", VALID)
def test_every_valid_layout_passes_as_pillow_decodes_it(width: int, height: int, depth: int, colour: int,
                                                        interlace: int) -> None:
    data = make_png(width, height, depth, colour, interlace)
    assert pillow_problem(data) is None
    assert pixel_problem(data) is None


def test_image_data_split_over_many_chunks_and_large_images_pass() -> None:
    assert pixel_problem(make_png(17, 9, pieces=40)) is None  # IDAT chunks of a few bytes each
    big = make_png(1500, 700, 8, 6)  # 4 MB of image data: many inflate pieces, rows across their edges
    assert pillow_problem(big) is None and pixel_problem(big) is None


def _bad_filter(raw: bytes, row: int, value: int, stride: int) -> bytes:
    b = bytearray(raw)
    b[row * stride] = value
    return bytes(b)


W, H = 7, 5
STRIDE = 1 + W * 3
RAW = raw_rows(W, H, 8, 2, 0)
CORRUPT: dict[str, Callable[[], bytes]] = {
    "bad filter byte, first row": lambda: make_png(raw=_bad_filter(RAW, 0, 5, STRIDE)),
    "bad filter byte, last row": lambda: make_png(raw=_bad_filter(RAW, H - 1, 255, STRIDE)),
    "bad filter byte, interlaced pass 7": lambda: make_png(
        raw=(r := raw_rows(W, H, 8, 2, 1))[:-STRIDE] + b"\x09" + r[-STRIDE + 1:], interlace=1),
    "short stream (a row missing)": lambda: make_png(raw=RAW[:-STRIDE]),
    "short stream (a byte missing)": lambda: make_png(raw=RAW[:-1]),
    "truncated compressed stream": lambda: make_png(stream=zlib.compress(RAW)[:-9]),
    "compressed stream without its checksum": lambda: make_png(stream=zlib.compress(RAW)[:-4]),
    "long stream (a row too many)": lambda: make_png(raw=RAW + RAW[:STRIDE]),
    "long stream (a byte too many)": lambda: make_png(raw=RAW + b"\x00"),
    "data after the compressed stream": lambda: make_png(stream=zlib.compress(RAW) + b"\x00\x01junk"),
    "second stream after the first": lambda: make_png(stream=zlib.compress(RAW) + zlib.compress(b"\x00")),
    "garbage compressed bytes": lambda: make_png(stream=b"\x78\x9c" + os.urandom(64)),
    "empty image data": lambda: make_png(stream=b""),
    "trailing garbage after IEND": lambda: make_png(after_iend=b"GARBAGE"),
    "bit depth 4 for RGB": lambda: make_png(depth=4),
    "bit depth 16 for a palette": lambda: make_png(depth=16, colour=3),
    "colour type 5": lambda: make_png(colour=5, raw=RAW),
    "unknown compression method": lambda: make_png(ihdr=struct.pack(">IIBBBBB", W, H, 8, 2, 1, 0, 0)),
    "unknown filter method": lambda: make_png(ihdr=struct.pack(">IIBBBBB", W, H, 8, 2, 0, 1, 0)),
    "unknown interlace method": lambda: make_png(ihdr=struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 2)),
    "palette image without PLTE": lambda: make_png(colour=3, palette=False),
    "IDAT chunks not consecutive": lambda: make_png(pieces=3, between_idat=b"Comment\x00between"),
    "decompression bomb": png_bomb,
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_image_data_is_rejected_with_its_code(case: str) -> None:
    """Every case is rejected, with the code the Pillow decode gives where Pillow rejects it too
    (Pillow lets a few through: a long stream, data after it, a missing checksum, no PLTE)."""
    data = CORRUPT[case]()
    found = pixel_problem(data)
    assert found is not None, case
    before = pillow_problem(data)
    if before is not None:
        assert found[0] == before[0], (case, found, before)
    assert found[0] in {"bad_image", "image_too_large"}
    assert "re-export" in found[1] or found[0] == "image_too_large"


def test_the_problem_says_what_is_wrong() -> None:
    assert "unknown filter type" in pixel_problem(CORRUPT["bad filter byte, last row"]())[1]
    assert "short IDAT stream" in pixel_problem(CORRUPT["short stream (a row missing)"]())[1]
    assert "long IDAT stream" in pixel_problem(CORRUPT["long stream (a byte too many)"]())[1]
    assert "truncated IDAT stream" in pixel_problem(CORRUPT["truncated compressed stream"]())[1]
    assert "follows the end" in pixel_problem(CORRUPT["data after the compressed stream"]())[1]
    assert "stray bytes after the PNG's IEND" in pixel_problem(CORRUPT["trailing garbage after IEND"]())[1]


def test_random_damage_to_valid_frames_never_passes_where_pillow_fails() -> None:
    """Bytes flipped inside the compressed stream, CRCs fixed: whenever Pillow's decode fails, so
    does the check (it may also fail where Pillow does not look: the stream's own checksum)."""
    rng = random.Random(7)
    base_raw = raw_rows(31, 23, 8, 2, 0, seed=3)
    stream = zlib.compress(base_raw, 6)
    disagreements = 0
    for _ in range(300):
        damaged = bytearray(stream)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(2, len(damaged))] ^= 1 << rng.randrange(8)
        data = make_png(31, 23, raw=base_raw, stream=bytes(damaged))
        before, now = pillow_problem(data), pixel_problem(data)
        if before is not None:
            assert now is not None and now[0] == before[0]
        elif now is not None:
            disagreements += 1  # stricter: the zlib checksum, a long stream
    assert disagreements < 300
