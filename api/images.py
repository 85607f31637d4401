"""Images in the API's request shapes, as Ollama reads them: base64 only, never fetched from a URL.

- Ollama's ``images`` (``/api/generate``, ``/api/chat`` messages): base64 strings, decoded by the engine.
- OpenAI ``image_url`` content parts (``/v1/chat/completions``) and ``input_image`` parts
  (``/v1/responses``): a data URL, ``data:image/{jpeg,jpg,png,webp};base64,...`` or ``data:;base64,...``
  (Ollama's ``decodeImageURL``); an ``http(s)`` URL is refused with Ollama's words.
- Anthropic ``image`` blocks (``/v1/messages``): ``source.type`` must be ``base64``.

What comes out is bytes; whether they are an image within bounds, and whether the model can see,
is the engine's to say (``engine.images``), with a 400 either way.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from api.errors import APIError

URL_REFUSED = "image URLs are not currently supported, please use base64 encoded data instead"
_DATA_PREFIXES = ("data:;base64,", *(f"data:image/{kind};base64," for kind in ("jpeg", "jpg", "png", "webp")))


def _base64(text: object, where: str, invalid: str) -> bytes:
    if not isinstance(text, str):
        raise APIError(400, f"{where}: {invalid}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{where}: {invalid}") from None


def data_url_image(url: object, where: str) -> bytes:
    """The bytes of an OpenAI image given as a data URL (Ollama's ``decodeImageURL``); 400 otherwise."""
    if not isinstance(url, str):
        raise APIError(400, f"{where} must be a data URL string")
    if url.startswith(("http://", "https://")):
        raise APIError(400, URL_REFUSED)
    prefix = next((p for p in _DATA_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise APIError(400, f"{where}: invalid image input (a data:image/jpeg, png or webp base64 URL)")
    return _base64(url[len(prefix) :], where, "invalid image input (bad base64)")


def openai_image_part(part: dict[str, Any], where: str) -> bytes:
    """An ``image_url`` part (``{"image_url": {"url": ...}}`` or a string), or a Responses ``input_image``."""
    image = part.get("image_url")
    if isinstance(image, dict):
        image = image.get("url")
    if image is None and part.get("file_id") is not None:
        raise APIError(
            400, f"{where}: file_id images are not supported, please use base64 encoded data instead"
        )
    return data_url_image(image, f"{where}.image_url")


def anthropic_image(block: dict[str, Any], where: str) -> bytes:
    """An Anthropic ``image`` block's bytes: only base64 sources, as Ollama's Anthropic layer takes."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise APIError(400, f"{where}: invalid image source")
    if source.get("type") != "base64":
        shown = str(source.get("type"))[:40]
        raise APIError(400, f"{where}: invalid image source type: {shown}. Only base64 images are supported.")
    return _base64(source.get("data"), f"{where}.source.data", "invalid base64 image data")


def ollama_images(value: object, where: str = "images") -> list[str]:
    """Ollama's ``images``: a list of base64 strings (decoded and checked by the engine)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(image, str) for image in value):
        raise APIError(400, f"{where} must be a list of base64 strings")
    return value
