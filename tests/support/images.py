"""Images for the vision tests, good and hostile, made with Pillow in memory."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def image_bytes(
    kind: str = "PNG", size: tuple[int, int] = (30, 20), color: tuple[int, int, int] = (200, 30, 90)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=kind)
    return out.getvalue()


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` whose header claims another size (its CRC fixed): a decoder believes it until it decodes."""
    ihdr = png[12:29]  # "IHDR" + 13 bytes of data
    data = struct.pack(">II", width, height) + ihdr[12:]
    chunk = b"IHDR" + data
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def png_bomb() -> bytes:
    """A 1-bit 8,000 x 6,000 PNG of zeros: ~6 KB on the wire, 48 megapixels (144 MB as RGB) decoded."""
    out = io.BytesIO()
    Image.new("1", (8_000, 6_000), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()
