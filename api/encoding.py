"""Request bodies sent compressed: Codex sends its ``/v1/responses`` bodies as ``Content-Encoding: zstd``.

Ollama decompresses them too (``middleware/openai.go``, since Codex 0.98).
The compressed bytes are bounded like any body, and the decompressed ones
come out in slices, each counted by ``api.limits.JsonShape`` before the next
is made: a small bomb that inflates to gigabytes is refused (413) after the
first 16 MiB, never built. The decoder's window is capped at 8 MiB, as
Ollama's is, so a frame cannot make it allocate more. Any other coding is a
415 that names what is accepted.

    async for chunk in decoded(request, limit): shape.feed(chunk)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import zstandard
from starlette.requests import Request

from api.limits import Refused

MAX_WINDOW = 8 << 20  # the most memory a zstd frame may ask the decoder for
SLICE = 256 << 10  # decompressed bytes handed on at a time


async def decoded(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request's body as sent, or decompressed when its ``Content-Encoding`` is zstd."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        async for chunk in request.stream():
            yield chunk
        return
    if coding != "zstd":
        raise Refused(415, f"Content-Encoding {coding[:40]!r} is not supported: send the body plain or zstd")
    compressed = bytearray()
    async for chunk in request.stream():
        compressed += chunk
        if len(compressed) > limit:
            raise Refused(413, f"request body is larger than {limit >> 20} MiB")
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    try:
        with decompressor.stream_reader(bytes(compressed), read_across_frames=True) as reader:
            while piece := reader.read(SLICE):
                yield piece
    except zstandard.ZstdError as error:
        raise Refused(400, f"the zstd request body does not decompress: {str(error)[:200]}") from None
