"""Images are decoded once at the edge within bounds: good ones pass, hostile ones are a one-line 400."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from engine.errors import InvalidInput
from engine.images import MAX_IMAGE_BYTES, check_image, decode_image
from tests.support.images import image_bytes, png_bomb, with_png_size


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_the_formats_ollama_takes_decode_to_rgb(kind: str) -> None:
    data = image_bytes(kind, (30, 20))
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (30, 20) and len(decoded.pixels) == 30 * 20 * 3
    assert check_image(data) is data


def test_a_png_with_transparency_becomes_rgb() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 0)).save(out, format="PNG")
    assert len(decode_image(out.getvalue()).pixels) == 4 * 4 * 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (image_bytes("GIF"), "image 1 is not a JPEG, PNG or WebP image"),  # wrong type
        (b"hello, this is text", "image 1 is not a JPEG, PNG or WebP image"),
        (b"", "image 1 is empty"),
        (image_bytes("PNG", (64, 64))[:60], "image 1 is not a readable image"),  # truncated
        (image_bytes("JPEG", (64, 64))[:200], "image 1 is not a readable image"),
        (with_png_size(image_bytes("PNG"), 100_000, 100_000), "larger than 40 megapixels"),  # huge dimensions
        (with_png_size(image_bytes("PNG"), 20_000, 10), "20,000x10 pixels: at most 16,384 on a side"),
        (
            with_png_size(image_bytes("PNG"), 3_000, 3_000),
            "image 1 is not a readable image",
        ),  # lies about size
        (png_bomb(), "8,000x6,000 pixels"),  # a few KB that would decode to 144 MB
        (b"\x89PNG" + bytes(MAX_IMAGE_BYTES), "at most 20 MiB per image"),
    ],
)
def test_hostile_images_are_refused_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_image(data, "image 1")
    assert "\n" not in str(caught.value)
