"""PNG bytes for test trees: small valid frames, and well-formed files that claim or hold huge images."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(seed: int = 0, size: tuple[int, int] = (16, 12)) -> bytes:
    """A small, valid, seed-dependent RGB PNG."""
    im = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    im.putpixel((seed % size[0], 0), (255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data and a correct CRC."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _ihdr_1bit(width: int, height: int) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width`` x ``height`` 1-bit pixels."""
    return (SIGNATURE + _ihdr_1bit(width, height)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def png_bomb(side: int = 20_000) -> bytes:
    """A well-formed 1-bit PNG of side x side pixels (400 MP): ~50 KB on disk, 400 MB decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    return SIGNATURE + _ihdr_1bit(side, side) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def noise_png(side: int) -> bytes:
    """A valid side x side RGB PNG of random pixels: about 3 bytes a pixel on disk (noise does not
    compress), for trees whose build reads and writes many megabytes."""
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
