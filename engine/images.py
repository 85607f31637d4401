"""Images sent to a vision model: decoded once at the edge, within bounds, before any model sees them.

Ollama takes JPEG, PNG and WebP (its CLI's and OpenAI layer's list); so does
llamadeck. An image arrives as bytes (the API decodes base64) and is decoded
by Pillow, a maintained library, in two steps: ``Image.open`` reads only the
header, so the size is known and held against ``MAX_IMAGE_PIXELS`` and
``MAX_IMAGE_SIDE`` before a pixel is decoded (a 100,000 x 100,000 PNG of a few
KB, a decompression bomb, is refused there); then the whole image is
decoded, so a truncated or corrupt file is refused now with a 400, not later
inside llama.cpp. Pillow's own bounds on PNG text chunks stay on.

    rgb = decode_image(data)            # DecodedImage(width, height, pixels: RGB bytes)
    check_image(data, "message 1's image 1")   # InvalidInput with a one-line reason
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import InvalidInput

if TYPE_CHECKING:
    from PIL.Image import Image
    from PIL.ImageFile import ImageFile

MAX_IMAGE_BYTES = 20 << 20  # one encoded image; a 4K photo is a few MB
MAX_IMAGE_SIDE = 16_384  # pixels on either side
MAX_IMAGE_PIXELS = 40_000_000  # width x height: decoded as RGB that is 120 MB, the most one image may hold
MAX_IMAGES = 16  # in one request, every message together (the API's limit too)
FORMATS = ("JPEG", "PNG", "WEBP")  # what Ollama accepts
# Images decoded at once in this process: a 40-megapixel RGBA PNG of zeros is 150 KB on the wire and
# 160 MB decoded; twenty clients sending fifteen each together took the server to 3.2 GB when every
# request thread decoded at once, 1.6 GB two at a time (malloc keeps some of each thread's arena).
DECODING = threading.BoundedSemaphore(2)
# Pillow warns on stderr of what it copes with (corrupt EXIF, a palette's byte transparency): a
# client's JPEG printed two lines into the server's log, or through the app's screen, per request.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


@dataclass(frozen=True)
class DecodedImage:
    """An image as a projector takes it: RGB, 3 bytes per pixel, rows top to bottom."""

    width: int
    height: int
    pixels: bytes
    sha256: str  # of the encoded bytes: the same image sent again is known by it


def _open(data: bytes, where: str) -> ImageFile:
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput(f"{where} is {len(data):,} bytes: at most {MAX_IMAGE_BYTES >> 20} MiB per image")
    if not data:
        raise InvalidInput(f"{where} is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InvalidInput(f"{where} is not a JPEG, PNG or WebP image") from None
    except Image.DecompressionBombError:  # Pillow's own bound (far above ours) on the header's size
        raise InvalidInput(f"{where} is larger than {MAX_IMAGE_PIXELS // 1_000_000} megapixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise InvalidInput(f"{where} is not a readable image ({_reason(error)})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"{where} has no pixels ({width}x{height})")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InvalidInput(
            f"{where} is {width:,}x{height:,} pixels: at most {MAX_IMAGE_SIDE:,} on a side and "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )
    return image


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split())[:120] or type(error).__name__


def _decoded(data: bytes, where: str, rgb: bool) -> Image:
    from PIL import Image as PIL

    image = _open(data, where)
    try:
        with DECODING, warnings.catch_warnings():
            warnings.simplefilter("error", PIL.DecompressionBombWarning)
            image.load()  # every pixel decoded: a truncated file fails here
            return image.convert("RGB") if rgb else image
    except (OSError, ValueError, SyntaxError, EOFError, PIL.DecompressionBombWarning, MemoryError) as error:
        raise InvalidInput(f"{where} is not a readable image ({_reason(error)})") from None
    finally:
        image.close()


def decode_image(data: bytes, where: str = "the image") -> DecodedImage:
    """The image's RGB pixels; InvalidInput (one line naming ``where``) for what is not a sound image."""
    rgb = _decoded(data, where, rgb=True)
    return DecodedImage(rgb.width, rgb.height, rgb.tobytes(), hashlib.sha256(data).hexdigest())


def check_image(data: bytes, where: str = "the image") -> bytes:
    """``data`` when it decodes as a JPEG, PNG or WebP image within the bounds; else InvalidInput."""
    _decoded(data, where, rgb=False)
    return data
